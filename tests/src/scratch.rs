//! [`Scratch`]: a fresh directory under the system temp dir for one test's files
//! (certificates, issuer lists, secrets), removed when the test ends.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates `hub-tests-<label>-<random>` under the temp dir.
    pub fn new(label: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "hub-tests-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    /// Writes `content` to `name` (a relative path; missing directories are created) in the
    /// directory and returns its path.
    pub fn write(&self, name: &str, content: &str) -> Result<PathBuf> {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
