"""A minimal OpenAI-compatible chat-completions server on a different HTTP stack (Python
aiohttp on uvloop), so the engine's figures do not depend on our own simulator.

    python bench/aiohttp_server.py PORT LATENCY_MS EXIT_AFTER_SECS [WORKERS]

Answers POST /v1/chat/completions after LATENCY_MS (asyncio sleep) with a fixed JSON score
reply the shipped English scoring prompt parses, and usage counts. Prints "listening" once
bound; stops by itself after EXIT_AFTER_SECS. WORKERS processes (default 1) share the port
(SO_REUSEPORT), so one Python process's limit is not what a benchmark measures.
"""

import asyncio
import json
import multiprocessing
import sys

import uvloop
from aiohttp import web

REPLY = json.dumps({"score": 4, "corpus_type": "educational", "main_languages": ["en"],
                    "quality_tags": ["clear"], "recommended_use_case": "pretraining"})


async def chat(request: web.Request) -> web.Response:
    body = await request.json()
    latency = request.app["latency"]
    if latency > 0:
        await asyncio.sleep(latency)
    return web.json_response({
        "id": "chatcmpl-aiohttp", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
    })


async def main(port: int, latency_ms: int, exit_after: int) -> None:
    app = web.Application()
    app["latency"] = latency_ms / 1000
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=8192, reuse_port=True).start()
    print(f"aiohttp OpenAI-compatible server listening on http://127.0.0.1:{port}/v1", flush=True)
    await asyncio.sleep(exit_after)
    await runner.cleanup()


def serve(port: int, latency_ms: int, exit_after: int) -> None:
    uvloop.install()
    asyncio.run(main(port, latency_ms, exit_after))


if __name__ == "__main__":
    port, latency_ms, exit_after = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    others = [multiprocessing.Process(target=serve, args=(port, latency_ms, exit_after), daemon=True) for _ in range(workers - 1)]
    for p in others:
        p.start()
    serve(port, latency_ms, exit_after)
