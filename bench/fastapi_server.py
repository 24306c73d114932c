"""A minimal OpenAI-compatible chat-completions server on the stack vLLM and SGLang serve with
(FastAPI on uvicorn, uvloop and httptools), written apart from modelcall's simulator, so the
client's efficiency is measured against a server stack we did not write.

    python bench/fastapi_server.py PORT LATENCY_MS EXIT_AFTER_SECS [WORKERS]

Answers POST /v1/chat/completions after LATENCY_MS (asyncio sleep) with a fixed JSON score
reply the shipped English scoring prompt parses, and usage counts. Prints "listening" once
bound; stops by itself after EXIT_AFTER_SECS. WORKERS processes (default 1) share the port
(SO_REUSEPORT).
"""

import asyncio
import json
import multiprocessing
import socket
import sys

import uvicorn
from fastapi import FastAPI, Request

REPLY = json.dumps({"score": 4, "corpus_type": "educational", "main_languages": ["en"],
                    "quality_tags": ["clear"], "recommended_use_case": "pretraining"})


def app_for(latency_s: float) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return {
            "id": "chatcmpl-fastapi", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
        }

    return app


def serve(port: int, latency_ms: int, exit_after: int, announce: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8192)
    config = uvicorn.Config(app_for(latency_ms / 1000), loop="uvloop", http="httptools", access_log=False,
                            log_level="warning", backlog=8192, timeout_keep_alive=30)
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        if announce:
            print(f"uvicorn+FastAPI OpenAI-compatible server listening on http://127.0.0.1:{port}/v1", flush=True)
        await asyncio.sleep(exit_after)
        server.should_exit = True
        await task

    asyncio.run(run())


if __name__ == "__main__":
    port, latency_ms, exit_after = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    others = [multiprocessing.Process(target=serve, args=(port, latency_ms, exit_after, False), daemon=True) for _ in range(workers - 1)]
    for p in others:
        p.start()
    serve(port, latency_ms, exit_after, True)
