//! A Kubernetes-style Secret or ConfigMap volume on disk, updated the way
//! kubelet updates one.

use std::path::{Path, PathBuf};

/// A Kubernetes-style Secret volume: `name -> ..data/name`, `..data ->
/// ..<version>`, updated by an atomic rename of the `..data` link.
pub struct SecretVolume {
    dir: PathBuf,
    version: usize,
}

impl SecretVolume {
    pub fn new(dir: &Path, name: &str, value: &str) -> Self {
        let mut v = SecretVolume {
            dir: dir.to_path_buf(),
            version: 0,
        };
        v.update(name, value);
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        v
    }

    pub fn update(&mut self, name: &str, value: &str) {
        self.version += 1;
        let versioned = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&versioned)).unwrap();
        std::fs::write(self.dir.join(&versioned).join(name), value).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&versioned, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}
