//! The tuner's on-disk cache: one JSON file per adapter and driver, named
//! by a hash of the adapter's identity. A file that cannot be read, or was
//! written for another adapter, driver or format, is ignored with a
//! warning; a cache that cannot be written is a warning too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::variants::MatmulVariant;

/// Version of the cache file's layout; a file of another version is
/// ignored (and replaced on the next write).
const FORMAT: &str = "deltagrad-tune/1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Adapter {
    name: String,
    vendor: u32,
    device: u32,
    driver: String,
    driver_info: String,
    backend: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    variant: String,
    ms: f64,
    candidates: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    adapter: Adapter,
    entries: BTreeMap<String, Entry>,
}

/// The on-disk cache of one adapter and driver: one JSON file, named by a
/// hash of the adapter's identity, in the cache folder.
pub(super) struct Disk {
    path: PathBuf,
    adapter: Adapter,
    /// Read lazily, once.
    entries: Option<BTreeMap<String, Entry>>,
}

/// Warn about an unwritable cache once per process.
static WRITE_WARNED: AtomicBool = AtomicBool::new(false);

impl Disk {
    pub fn new(dir: &Path, info: &wgpu::AdapterInfo) -> Disk {
        let adapter = Adapter {
            name: info.name.clone(),
            vendor: info.vendor,
            device: info.device,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            backend: format!("{:?}", info.backend),
        };
        let id = serde_json::to_string(&adapter).unwrap_or_default();
        let hex = format!("{:016x}", fnv1a(format!("{FORMAT}\n{id}").as_bytes()));
        Disk {
            path: dir.join(format!("tune-{hex}.json")),
            adapter,
            entries: None,
        }
    }

    /// The file's entries, or `None` (with a warning) for a file that is
    /// corrupt or belongs to another adapter, driver or format. A missing
    /// file is an empty cache.
    fn read(&self, warn: bool) -> BTreeMap<String, Entry> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => {
                if warn {
                    eprintln!(
                        "deltagrad: ignoring the tuning cache {}: {e}",
                        self.path.display()
                    );
                }
                return BTreeMap::new();
            }
        };
        match serde_json::from_str::<CacheFile>(&text) {
            Ok(f) if f.format == FORMAT && f.adapter == self.adapter => f.entries,
            Ok(f) => {
                if warn {
                    eprintln!(
                        "deltagrad: ignoring the tuning cache {}: written for {} ({} {}), format {}; this is {} ({} {}), format {FORMAT}",
                        self.path.display(),
                        f.adapter.name,
                        f.adapter.driver,
                        f.adapter.driver_info,
                        f.format,
                        self.adapter.name,
                        self.adapter.driver,
                        self.adapter.driver_info
                    );
                }
                BTreeMap::new()
            }
            Err(e) => {
                if warn {
                    eprintln!(
                        "deltagrad: ignoring the corrupt tuning cache {}: {e}",
                        self.path.display()
                    );
                }
                BTreeMap::new()
            }
        }
    }

    pub fn lookup(&mut self, class: &str) -> Option<(MatmulVariant, f64)> {
        if self.entries.is_none() {
            self.entries = Some(self.read(true));
        }
        let e = self.entries.as_ref()?.get(class)?;
        Some((e.variant.parse().ok()?, e.ms))
    }

    /// Adds an entry and rewrites the file atomically (a temporary file
    /// renamed over it), merged with what other processes wrote since.
    pub fn store(&mut self, class: &str, v: MatmulVariant, ms: f64, candidates: usize) {
        let entry = Entry {
            variant: v.to_string(),
            ms,
            candidates,
        };
        let mut entries = self.read(false);
        entries.insert(class.to_string(), entry.clone());
        self.entries
            .get_or_insert_with(BTreeMap::new)
            .insert(class.to_string(), entry);
        let file = CacheFile {
            format: FORMAT.to_string(),
            adapter: self.adapter.clone(),
            entries,
        };
        if let Err(e) = write_atomic(&self.path, &file)
            && !WRITE_WARNED.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "deltagrad: cannot write the tuning cache {}: {e} (continuing without it)",
                self.path.display()
            );
        }
    }
}

fn write_atomic(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("json.tmp-{}-{nanos}", std::process::id()));
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// FNV-1a, 64 bits: a stable name for an adapter's cache file (the file
/// itself records the adapter in full, so a collision is caught on read).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(driver_info: &str) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "Test GPU".into(),
            driver: "testdrv".into(),
            driver_info: driver_info.into(),
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, wgpu::Backend::Vulkan)
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("deltagrad-tune-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn disk_cache_round_trips_and_rejects_foreign_and_corrupt_files() {
        let dir = scratch("disk");
        let v: MatmulVariant = "64x16/4x4/k16/s8".parse().unwrap();
        let mut a = Disk::new(&dir, &info("1.0"));
        assert_eq!(a.lookup("m128-k1024-n8-tn"), None);
        a.store("m128-k1024-n8-tn", v, 0.25, 9);
        // A new process sees it.
        let mut b = Disk::new(&dir, &info("1.0"));
        assert_eq!(b.lookup("m128-k1024-n8-tn"), Some((v, 0.25)));
        // Another driver version: another file, nothing in it.
        let mut c = Disk::new(&dir, &info("2.0"));
        assert_ne!(c.path, a.path);
        assert_eq!(c.lookup("m128-k1024-n8-tn"), None);
        // A foreign file under our name (copied from another machine) is
        // ignored, then replaced by the next write.
        std::fs::copy(&a.path, &c.path).unwrap();
        let mut c = Disk::new(&dir, &info("2.0"));
        assert_eq!(c.lookup("m128-k1024-n8-tn"), None);
        c.store("m1-k1-n1-nn", MatmulVariant::DEFAULT, 0.01, 1);
        let mut c = Disk::new(&dir, &info("2.0"));
        assert_eq!(
            c.lookup("m1-k1-n1-nn"),
            Some((MatmulVariant::DEFAULT, 0.01))
        );
        // Corrupt: ignored.
        std::fs::write(&a.path, "{ not json").unwrap();
        let mut d = Disk::new(&dir, &info("1.0"));
        assert_eq!(d.lookup("m128-k1024-n8-tn"), None);
        d.store("m2-k2-n2-nn", MatmulVariant::DEFAULT, 0.02, 1);
        let text = std::fs::read_to_string(&a.path).unwrap();
        assert!(
            text.contains(FORMAT) && text.contains("m2-k2-n2-nn"),
            "{text}"
        );
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_cache_is_not_an_error() {
        let dir = scratch("unwritable");
        std::fs::write(&dir, "a file where the folder should be").unwrap();
        let mut d = Disk::new(&dir, &info("1.0"));
        d.store("m1-k1-n1-nn", MatmulVariant::DEFAULT, 0.01, 1);
        // Still answers from memory.
        assert_eq!(
            d.lookup("m1-k1-n1-nn"),
            Some((MatmulVariant::DEFAULT, 0.01))
        );
        let _ = std::fs::remove_file(&dir);
    }
}
