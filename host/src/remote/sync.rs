//! Staging a task's remote paths locally, and syncing the outputs back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use modelcall_config::step::DistillationStep;
use modelcall_config::LoadedTask;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use super::store::RemoteUrl;

/// Where remote paths are staged: `$MODELCALL_STAGING_DIR`, else `<tmp>/modelcall-staging`,
/// then `<scheme>/<bucket>/<prefix>`.
fn local_for(url: &RemoteUrl) -> PathBuf {
    let root = std::env::var_os("MODELCALL_STAGING_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("modelcall-staging"));
    let mut p = root.join(url.scheme).join(&url.bucket);
    for part in url.prefix.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
    }
    p
}

/// One remote output folder and its local stage.
struct Output {
    url: RemoteUrl,
    local: PathBuf,
    store: Arc<dyn ObjectStore>,
    /// Objects that were there before the run (relative names), to remove those the run removed.
    before: Vec<String>,
}

/// The remote outputs of a staged task; [`Staged::finish`] uploads them.
pub struct Staged {
    outputs: Vec<Arc<Output>>,
    periodic: Option<(tokio::task::JoinHandle<()>, Arc<tokio::sync::Notify>)>,
}

/// Files the sync never uploads: the output lock (a local process's) and temp files.
fn is_local_only(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.ends_with(".lock") || name.starts_with(".modelcall-tmp.")
}

/// Every file under `dir`, as `/`-separated relative names.
fn local_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

impl Output {
    async fn upload(&self, only_journals: bool) -> anyhow::Result<()> {
        for rel in local_files(&self.local) {
            if is_local_only(&rel) || (only_journals && !rel.starts_with(".modelcall/")) {
                continue;
            }
            upload_file(&self.store, &self.local.join(&rel), &self.url.object(&rel))
                .await
                .map_err(|e| anyhow::anyhow!("uploading {rel} to {}: {e}", self.url))?;
        }
        Ok(())
    }

    /// Removes the objects the run removed locally (e.g. an error file with no errors left).
    async fn prune(&self) -> anyhow::Result<()> {
        for rel in &self.before {
            if !is_local_only(rel) && !self.local.join(rel).exists() {
                self.store.delete(&self.url.object(rel)).await.map_err(|e| anyhow::anyhow!("removing {rel} from {}: {e}", self.url))?;
            }
        }
        Ok(())
    }
}

/// Streams a local file up as one object (multipart for large files); the object appears whole
/// when the upload completes.
async fn upload_file(store: &Arc<dyn ObjectStore>, local: &Path, object: &object_store::path::Path) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(local).await?;
    let mut writer = object_store::buffered::BufWriter::new(store.clone(), object.clone());
    tokio::io::copy(&mut file, &mut writer).await?;
    writer.shutdown().await?;
    Ok(())
}

/// Streams an object down to `local` (through a temp file, renamed into place).
async fn download_file(store: &Arc<dyn ObjectStore>, object: &object_store::path::Path, local: &Path) -> anyhow::Result<()> {
    if let Some(dir) = local.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = local.with_file_name(format!(".modelcall-tmp.download.{}", local.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()));
    let mut out = tokio::fs::File::create(&tmp).await?;
    let mut stream = store.get(object).await?.into_stream();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.sync_all().await?;
    drop(out);
    tokio::fs::rename(&tmp, local).await?;
    Ok(())
}

/// Brings the objects under `url` down to `local`: those missing locally, and those whose
/// size differs (for journals, only a longer remote one: a local journal is the newer one).
/// Returns the relative names of every object there.
async fn download_tree(store: &Arc<dyn ObjectStore>, url: &RemoteUrl, local: &Path) -> anyhow::Result<Vec<String>> {
    let prefix = url.prefix_path();
    let mut listing = store.list(prefix.as_ref());
    let mut names = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| anyhow::anyhow!("listing {url}: {e}"))?;
        let key = meta.location.as_ref();
        let rel = match &prefix {
            Some(p) => key.strip_prefix(p.as_ref()).map(|r| r.trim_start_matches('/')).unwrap_or(key),
            None => key,
        }
        .to_string();
        if rel.is_empty() {
            continue;
        }
        let dest = local.join(&rel);
        let local_len = std::fs::metadata(&dest).map(|m| m.len()).ok();
        let fetch = match local_len {
            None => true,
            Some(n) if rel.contains(".journal") => n < meta.size,
            Some(n) => n != meta.size,
        };
        if fetch {
            download_file(store, &meta.location, &dest).await.map_err(|e| anyhow::anyhow!("downloading {rel} from {url}: {e}"))?;
        }
        names.push(rel);
    }
    Ok(names)
}

/// The object `url` names, when it names one (rather than a prefix).
async fn object_at(store: &Arc<dyn ObjectStore>, url: &RemoteUrl) -> Option<object_store::ObjectMeta> {
    if url.prefix.is_empty() {
        return None;
    }
    store.head(&object_store::path::Path::from(url.prefix.as_str())).await.ok()
}

/// Stages an input: the object, or every object under the prefix. Returns the local path.
async fn stage_input(raw: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(url) = RemoteUrl::parse(raw) else { return Ok(None) };
    let store = url.store()?;
    let local = local_for(&url);
    if let Some(meta) = object_at(&store, &url).await {
        if std::fs::metadata(&local).map(|m| m.len()).ok() != Some(meta.size) {
            download_file(&store, &meta.location, &local).await.map_err(|e| anyhow::anyhow!("downloading {url}: {e}"))?;
        }
    } else {
        let names = download_tree(&store, &url, &local).await?;
        if names.is_empty() {
            anyhow::bail!("{url} holds no objects (is the bucket or prefix right?)");
        }
    }
    eprintln!("input {url} staged in {}", local.display());
    Ok(Some(local))
}

/// Stages an output folder: what the prefix holds comes down first (journals to resume from,
/// earlier outputs to adopt).
async fn stage_output(raw: &str, outputs: &mut Vec<Arc<Output>>) -> anyhow::Result<Option<PathBuf>> {
    let Some(url) = RemoteUrl::parse(raw) else { return Ok(None) };
    let store = url.store()?;
    let local = local_for(&url);
    std::fs::create_dir_all(&local)?;
    let before = download_tree(&store, &url, &local).await?;
    eprintln!("output {url} staged in {} ({} object(s) there already)", local.display(), before.len());
    outputs.push(Arc::new(Output { url, local: local.clone(), store, before }));
    Ok(Some(local))
}

/// The task with its `s3://`/`tos://` paths replaced by staged local ones, and what to upload
/// at the end; `None` when the task has no remote path.
pub async fn stage(task: &LoadedTask) -> anyhow::Result<Option<(LoadedTask, Staged)>> {
    let mut t = task.clone();
    let mut outputs = Vec::new();
    let mut any = false;
    let text = |p: &Path| p.to_string_lossy().to_string();
    if let Some(f) = t.task.data.input_folder.clone() {
        if let Some(local) = stage_input(&f).await? {
            t.task.data.input_folder = Some(text(&local));
            any = true;
        }
    }
    if let Some(f) = t.task.data.input_file.clone() {
        if let Some(local) = stage_input(&f).await? {
            t.task.data.input_file = Some(text(&local));
            any = true;
        }
    }
    if let Some(o) = t.output_folder.clone() {
        if let Some(local) = stage_output(&text(&o), &mut outputs).await? {
            t.output_folder = Some(local.clone());
            t.task.data.output_folder = Some(text(&local));
            any = true;
        }
    }
    if let Some(DistillationStep::GenerateResponse(step)) = &mut t.task.distillation {
        if let Some(local) = stage_input(&text(&step.input_path)).await? {
            step.input_path = local;
            any = true;
        }
        if let Some(local) = stage_output(&text(&step.output_path), &mut outputs).await? {
            step.output_path = local;
            any = true;
        }
    }
    Ok(any.then(|| (t, Staged { outputs, periodic: None })))
}

impl Staged {
    /// Uploads the journals every `MODELCALL_REMOTE_SYNC_SECS` (default 30) while the run goes.
    pub fn start_periodic(&mut self, rt: &tokio::runtime::Handle) {
        if self.outputs.is_empty() {
            return;
        }
        let every = std::env::var("MODELCALL_REMOTE_SYNC_SECS").ok().and_then(|v| v.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(30.0);
        let stop = Arc::new(tokio::sync::Notify::new());
        let outputs = self.outputs.clone();
        let stopped = stop.clone();
        let task = rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(every)) => {}
                    _ = stopped.notified() => return,
                }
                for o in &outputs {
                    if let Err(e) = o.upload(true).await {
                        tracing::warn!("journal upload failed (retried at the next sync and at the end): {e:#}");
                    }
                }
            }
        });
        self.periodic = Some((task, stop));
    }

    /// Stops the periodic sync and uploads everything the run wrote.
    pub async fn finish(self) -> anyhow::Result<()> {
        if let Some((task, stop)) = self.periodic {
            stop.notify_one();
            let _ = task.await;
        }
        for o in &self.outputs {
            o.upload(false).await?;
            o.prune().await?;
            eprintln!("uploaded the results to {}", o.url);
        }
        Ok(())
    }
}
