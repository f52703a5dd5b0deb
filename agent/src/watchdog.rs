//! Hardware watchdog (optional, `parapet-agent --watchdog /dev/watchdog`; off by default). Self-fencing
//! needs a running agent; the watchdog covers the agent itself dying or hanging while VMs run: the agent
//! pets the device on every guardian tick while it is healthy, and the hardware resets the host when the
//! pets stop. The guardian also stops petting when a self-fence could not stop every VM, so the reset does
//! what the agent could not.
//!
//! The reset timeout is the driver's (e.g. `modprobe softdog soft_margin=6`, or the BMC's watchdog
//! settings); it must be shorter than the self-fence timeout, since the engine relies on the host being
//! fenced by then. The agent reads it from sysfs and warns when it is not. A clean agent stop disarms the
//! device with the magic close (`V`), unless the driver was loaded with `nowayout`.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Something that resets the host unless petted in time.
pub trait Watchdog: Send + Sync + Debug {
    /// "Still alive": postpones the reset.
    fn pet(&self);
    /// Disarm on a clean stop.
    fn disarm(&self);
}

/// A Linux watchdog device (`/dev/watchdog`): opening it arms it; every write pets it.
#[derive(Debug)]
pub struct DeviceWatchdog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeviceWatchdog {
    /// Open (and so arm) the device.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(DeviceWatchdog { path: path.to_owned(), file: Mutex::new(Some(file)) })
    }

    /// The device's reset timeout as its driver reports it in sysfs, when it does.
    pub fn timeout(&self) -> Option<Duration> {
        let name = self.path.file_name()?.to_str()?;
        let name = if name == "watchdog" { "watchdog0" } else { name };
        let text = std::fs::read_to_string(Path::new("/sys/class/watchdog").join(name).join("timeout")).ok()?;
        text.trim().parse().ok().map(Duration::from_secs)
    }
}

impl Watchdog for DeviceWatchdog {
    fn pet(&self) {
        if let Some(file) = self.file.lock().unwrap().as_mut()
            && let Err(error) = file.write_all(b"\0")
        {
            tracing::error!(device = %self.path.display(), "cannot pet the watchdog: {error}");
        }
    }

    fn disarm(&self) {
        if let Some(mut file) = self.file.lock().unwrap().take()
            && let Err(error) = file.write_all(b"V")
        {
            tracing::warn!(device = %self.path.display(), "cannot disarm the watchdog: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pets_write_to_the_device_and_the_magic_close_disarms() {
        // A plain file stands in for the device: what the agent writes is what a driver would see.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").unwrap();
        let watchdog = DeviceWatchdog::open(&path).unwrap();
        watchdog.pet();
        watchdog.pet();
        watchdog.disarm();
        watchdog.pet();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0\0V");
        assert!(DeviceWatchdog::open(&dir.path().join("missing")).is_err());
    }
}
