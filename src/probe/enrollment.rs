//! What enrollment learns about a host: the sections `enroll.sh` prints, read into [`Facts`].
//!
//! Pure, like the rest of `probe`.

use super::{memory, osinfo, split_sections};

/// The facts enrollment found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub os_id: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel_name: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub hostname: Option<String>,
    pub uname: Option<String>,
    pub cpu_model: Option<String>,
    pub cpu_count: Option<u32>,
    pub memory_total_bytes: Option<u64>,
    pub has_nvidia: bool,
    pub has_proc: bool,
    /// The provisioning section's lines, when provisioning ran.
    pub provision: Option<String>,
}

impl Facts {
    /// Whether hostwatch can poll this host (Linux with /proc).
    pub fn supported(&self) -> bool {
        self.has_proc && self.kernel_name.as_deref() == Some("Linux")
    }
}

fn line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Reads the enrollment script's output. Pure.
pub fn parse_enrollment(output: &str) -> Facts {
    let s = split_sections(output);
    let get = |name: &str| s.get(name).copied().unwrap_or("");
    let os = osinfo::parse_os_release(get("os_release"));
    let cpu = osinfo::parse_cpuinfo(get("cpuinfo"));
    let uname_a = line(get("uname_a"));
    let from_a = uname_a.as_deref().and_then(osinfo::parse_uname_a);
    Facts {
        os_id: os.get("ID").cloned(),
        os_name: os.get("PRETTY_NAME").or(os.get("NAME")).cloned(),
        os_version: os.get("VERSION_ID").cloned(),
        kernel_name: line(get("uname_s"))
            .or_else(|| from_a.as_ref().map(|u| u.kernel_name.clone())),
        kernel: line(get("uname_r")).or_else(|| from_a.as_ref().map(|u| u.release.clone())),
        arch: line(get("uname_m")),
        hostname: line(get("hostname")).or_else(|| from_a.as_ref().map(|u| u.nodename.clone())),
        uname: uname_a,
        cpu_model: cpu.model,
        cpu_count: cpu.count,
        memory_total_bytes: memory::parse_meminfo(get("meminfo")).map(|m| m.total_bytes),
        has_nvidia: get("nvidia").lines().any(|l| l.starts_with("GPU ")),
        has_proc: line(get("proc")).as_deref() == Some("yes"),
        provision: s.get("provision").map(|t| t.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_from_a_transcript() {
        let out = "\n<<<os_release>>>\nID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n\
                   <<<uname_s>>>\nLinux\n<<<uname_r>>>\n6.1.0\n<<<uname_m>>>\nx86_64\n<<<uname_a>>>\nLinux vm 6.1.0 #1 SMP x86_64 GNU/Linux\n\
                   <<<hostname>>>\nvm\n<<<proc>>>\nyes\n<<<cpuinfo>>>\nprocessor\t: 0\nmodel name\t: Xeon\n\
                   <<<meminfo>>>\nMemTotal: 1024 kB\nMemFree: 512 kB\n<<<nvidia>>>\nGPU 0: NVIDIA L40S (UUID: GPU-1)\n<<<whoami>>>\nroot\n<<<end>>>\n";
        let f = parse_enrollment(out);
        assert!(f.supported());
        assert_eq!(f.os_id.as_deref(), Some("debian"));
        assert_eq!(f.os_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(
            (f.kernel.as_deref(), f.arch.as_deref()),
            (Some("6.1.0"), Some("x86_64"))
        );
        assert_eq!(
            (f.cpu_model.as_deref(), f.cpu_count),
            (Some("Xeon"), Some(1))
        );
        assert_eq!(f.memory_total_bytes, Some(1024 * 1024));
        assert!(f.has_nvidia);
        assert_eq!(f.provision, None);
    }

    #[test]
    fn non_linux_is_unsupported() {
        let out = "<<<uname_s>>>\nFreeBSD\n<<<uname_a>>>\nFreeBSD rootkit 14.0-RELEASE FreeBSD 14.0-RELEASE #0\n<<<proc>>>\n\n<<<end>>>\n";
        let f = parse_enrollment(out);
        assert!(!f.supported());
        assert_eq!(
            f.uname.as_deref(),
            Some("FreeBSD rootkit 14.0-RELEASE FreeBSD 14.0-RELEASE #0")
        );
        assert!(!f.has_nvidia);
    }
}
