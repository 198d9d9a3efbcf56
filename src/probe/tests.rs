//! Parser tests: every fixture in `../shared/fixtures` that a section covers, with asserted
//! values, plus hand-written broken inputs. A parser never panics and never invents a number.

use super::{
    cpu::{self, CpuTimes},
    df, diskstats, memory, net, nvidia, osinfo, *,
};

fn fixture(path: &str) -> String {
    let full = format!("{}/../shared/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

const KIB: u64 = 1024;

#[test]
fn stat_fixtures() {
    let local = cpu::parse_stat(&fixture("proc/local-stat"));
    assert_eq!(local.cores.len(), 2);
    let t = local.total.unwrap();
    assert_eq!(
        (t.user, t.system, t.idle, t.iowait, t.softirq, t.steal),
        (15012, 5942, 32883, 296, 131, 1028)
    );

    // guest (44) and guest_nice (36) are inside user and nice: not added again.
    let ne = cpu::parse_stat(&fixture("proc/node_exporter-stat"));
    assert_eq!(ne.cores.len(), 8);
    assert_eq!(
        ne.total.unwrap().total(),
        301854 + 612 + 111922 + 8979004 + 3552 + 2 + 3944
    );

    // No trailing newline, non-zero steal.
    let go = cpu::parse_stat(&fixture("proc/gopsutil-424-stat"));
    assert_eq!(go.cores.len(), 4);
    assert_eq!(go.total.unwrap().steal, 5892);

    let big = cpu::parse_stat(&fixture("proc/pcp-bigsys-480cpu-stat"));
    assert_eq!(big.cores.len(), 480);
    assert_eq!(big.total.unwrap().idle, 869208946);

    // Offline cpu6: the others keep their numbers.
    let offline = cpu::parse_stat(&fixture("proc/sysstat-root3-stat"));
    assert_eq!(
        offline.cores.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 7]
    );
    assert_eq!(offline.cores[&7].nice, 100925);

    // 7-value lines (no steal/guest).
    let old = cpu::parse_stat(&fixture("proc/sysstat-root6-stat"));
    assert_eq!(old.cores.len(), 10);
    let t = old.total.unwrap();
    assert_eq!((t.softirq, t.steal), (25855, 0));
}

#[test]
fn cpu_usage_from_two_readings() {
    let a = CpuTimes {
        user: 100,
        system: 100,
        idle: 800,
        ..Default::default()
    };
    let b = CpuTimes {
        user: 150,
        system: 150,
        idle: 850,
        iowait: 40,
        steal: 10,
        ..Default::default()
    };
    let u = cpu::usage(&a, &b).unwrap();
    // Δtotal 200 (user 50, system 50, idle 50, iowait 40, steal 10): busy 110.
    assert!((u.usage_pct - 55.0).abs() < 1e-9, "{u:?}");
    assert!((u.iowait_pct - 20.0).abs() < 1e-9);
    assert!((u.steal_pct - 5.0).abs() < 1e-9);
    assert_eq!(cpu::usage(&b, &a), None, "counters went backwards");
    assert_eq!(cpu::usage(&a, &a), None, "no time passed");
}

#[test]
fn meminfo_fixtures() {
    let local = memory::parse_meminfo(&fixture("proc/local-meminfo")).unwrap();
    assert_eq!(local.total_bytes, 24684092 * KIB);
    assert_eq!(local.available_bytes, 24341724 * KIB);
    assert!((local.used_pct - (24684092.0 - 24341724.0) * 100.0 / 24684092.0).abs() < 1e-9);
    assert_eq!(local.swap_total_bytes, 0);
    assert_eq!(local.swap_used_pct, None, "no swap is not 0 % of swap");

    // No MemAvailable (kernel < 3.14): MemFree + Buffers + Cached.
    let old = memory::parse_meminfo(&fixture("proc/procfs-meminfo")).unwrap();
    assert_eq!(old.available_bytes, (440324 + 1020128 + 12007640) * KIB);

    // 2.4-style header lines in bytes are not read as kB values.
    let v24 = memory::parse_meminfo(&fixture("proc/gopsutil-issue1002-meminfo")).unwrap();
    assert_eq!(
        (v24.total_bytes, v24.available_bytes),
        (254472 * KIB, 210156 * KIB)
    );

    let sparse = memory::parse_meminfo(&fixture("proc/gopsutil-anonhugepages-meminfo")).unwrap();
    assert_eq!(sparse.available_bytes, 127880216 * KIB);
    assert_eq!(sparse.swap_total_bytes, 0);

    let huge = memory::parse_meminfo(&fixture("proc/telegraf-hugepages-meminfo")).unwrap();
    assert_eq!(huge.swap_total_bytes, 8388604 * KIB);
    assert_eq!(huge.swap_used_pct, Some(0.0));
}

#[test]
fn loadavg_and_uptime_fixtures() {
    let l = memory::parse_loadavg(&fixture("proc/local-loadavg")).unwrap();
    assert_eq!((l.one, l.five, l.fifteen), (13.36, 7.62, 2.98));
    let l = memory::parse_loadavg(&fixture("proc/procfs-loadavg")).unwrap();
    assert_eq!((l.one, l.five, l.fifteen), (0.02, 0.04, 0.05));
    assert_eq!(
        memory::parse_uptime(&fixture("proc/local-uptime")),
        Some(277.62)
    );
    // Idle seconds (summed over CPUs) exceed uptime: only the first number counts.
    assert_eq!(
        memory::parse_uptime(&fixture("proc/sysstat-root1-uptime")),
        Some(7192.55)
    );
}

#[test]
fn net_dev_fixtures() {
    let local = net::parse_net_dev(&fixture("proc/local-net-dev"));
    let names: Vec<&str> = local.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
    assert_eq!(
        (local[3].1.rx_bytes, local[3].1.tx_bytes),
        (36705653, 124373)
    );

    let ne = net::parse_net_dev(&fixture("proc/node_exporter-net-dev"));
    assert_eq!(ne.len(), 10);
    let get = |n: &str| {
        ne.iter()
            .find(|(name, _)| name == n)
            .unwrap_or_else(|| panic!("no {n}"))
            .1
    };
    // No space between the colon and a huge counter.
    assert_eq!(get("eth0").rx_bytes, 68210035552);
    assert_eq!(get("eth0").tx_bytes, 9315587528);
    // A name with a colon, a unicode name.
    assert_eq!(get("ibr10:30").rx_bytes, 0);
    assert_eq!(get("💩0").tx_bytes, 404570255);
    assert_eq!(get("flannel.1").rx_bytes, 18144009813);

    let ss = net::parse_net_dev(&fixture("proc/sysstat-root5-net-dev"));
    assert_eq!(ss.len(), 8);
    let enp6s1 = ss.iter().find(|(n, _)| n == "enp6s1").unwrap().1;
    assert_eq!((enp6s1.rx_bytes, enp6s1.tx_bytes), (9169, 8111));
    assert!(ss.iter().any(|(n, _)| n == "virbr0-nic"));

    assert_eq!(
        net::parse_net_dev(&fixture("proc/pcp-bigsys-net-dev")).len(),
        49
    );
}

#[test]
fn diskstats_fixtures() {
    let local = diskstats::parse_diskstats(&fixture("proc/local-diskstats"));
    assert_eq!(
        local.len(),
        1,
        "loop and zram devices are left out: {local:?}"
    );
    assert_eq!(local[0].0, "vda");
    assert_eq!(local[0].1.read_bytes, 1658442 * 512);
    assert_eq!(local[0].1.write_bytes, 714384 * 512);

    // 14-, 18- and 20-field lines in one file; partitions, ram, loop, fd and sr left out.
    let ne = diskstats::parse_diskstats(&fixture("proc/node_exporter-diskstats"));
    let names: Vec<&str> = ne.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "sda", "dm-0", "dm-1", "dm-2", "dm-3", "dm-4", "dm-5", "mmcblk0", "vda", "nvme0n1",
            "sdb", "sdc"
        ]
    );
    let sda = ne[0].1;
    assert_eq!(
        (sda.read_bytes, sda.write_bytes),
        (1003346126 * 512, 505697032 * 512)
    );

    let big = diskstats::parse_diskstats(&fixture("proc/pcp-bigsys-diskstats"));
    assert!(
        big.iter()
            .all(|(n, _)| n.starts_with("sd") || n.starts_with("dm-")),
        "{big:?}"
    );
    assert!(big.iter().any(|(n, _)| n == "sdbr") && big.iter().any(|(n, _)| n == "dm-12"));
    assert_eq!(
        big.iter().find(|(n, _)| n == "sdb").unwrap().1.read_bytes,
        413446656
    );
}

fn mount<'a>(rows: &'a [df::DfRow], m: &str) -> &'a df::DfRow {
    rows.iter().find(|r| r.mount == m).unwrap_or_else(|| {
        panic!(
            "no mount {m:?} in {:#?}",
            rows.iter().map(|r| &r.mount).collect::<Vec<_>>()
        )
    })
}

#[test]
fn df_baseline() {
    let rows = df::parse_df(&fixture("df/local-df-Pk.txt"));
    assert_eq!(rows.len(), 4);
    let root = mount(&rows, "/");
    assert_eq!(root.device, "/dev/vda");
    assert_eq!(root.total, Some(264212084 * KIB));
    assert_eq!(root.used, Some(11689316 * KIB));
    assert_eq!(root.available, Some(83596572 * KIB));
    let inodes = df::parse_df(&fixture("df/local-df-Pi.txt"));
    assert!(mount(&inodes, "/").total.unwrap() > 0);
}

#[test]
fn df_awkward_gnu() {
    let rows = df::parse_df(&fixture("df/local-awkward-gnu-df-Pk.txt"));
    assert_eq!(
        mount(&rows, "/tmp/dftest/mnt with spaces").total,
        Some(10240 * KIB)
    );
    assert_eq!(
        mount(
            &rows,
            "/tmp/dftest/donnĂ©es Ă©tĂ©".replace("Ă©", "é").as_str()
        )
        .total,
        Some(20480 * KIB)
    );
    let full = mount(&rows, "/tmp/dftest/srv/full disk");
    assert_eq!((full.used, full.available), (Some(13746 * KIB), Some(0)));
    assert_eq!(
        mount(&rows, "/tmp/dftest/srv/pg_wal").device,
        "/tmp/dftest/dev/mapper/vg_data_extremely_long_volume_group_name-lv_postgresql_wal_archive"
    );
    assert_eq!(
        mount(&rows, "/tmp/dftest/mnt/nfs-home").device,
        "filer01.example.internal:/export/home"
    );
    mount(&rows, "/tmp/dftest/tab?dir");
    mount(&rows, "/tmp/dftest/new?line");

    let inodes = df::parse_df(&fixture("df/local-awkward-gnu-df-Pi.txt"));
    let unlimited = mount(&inodes, "/tmp/dftest/mnt/scratch-unlimited-inodes");
    assert_eq!((unlimited.total, unlimited.used), (Some(0), Some(0)));

    let rows = df::parse_df(&fixture("df/local-awkward2-gnu-df-Pk.txt"));
    let cifs = mount(&rows, "/tmp/dftest2/mnt/cifs share");
    assert_eq!(cifs.device, "//fileserver.example.com/Some Share/Team Data");
    assert_eq!(cifs.total, Some(30720 * KIB));
    assert_eq!(mount(&rows, "/tmp/dftest2/b1  b2").total, Some(2048 * KIB));
    assert_eq!(
        mount(&rows, "/tmp/dftest2/trailing space ").total,
        Some(3072 * KIB)
    );
    assert_eq!(mount(&rows, "/tmp/dftest2/50% full").used, Some(2048 * KIB));
    assert_eq!(
        mount(&rows, "/tmp/dftest2/ 123 456 7%").total,
        Some(5120 * KIB)
    );
    assert_eq!(
        df::parse_df(&fixture("df/local-awkward2-gnu-df-Pi.txt")).len(),
        5
    );
}

#[test]
fn df_awkward_busybox() {
    let rows = df::parse_df(&fixture("df/local-awkward-busybox-df-Pk.txt"));
    // Bind mounts printed twice are kept once.
    assert_eq!(rows.iter().filter(|r| r.mount == "/dev/shm").count(), 1);
    // A raw newline splits the entry over two lines; a raw tab stays.
    assert_eq!(
        mount(&rows, "/tmp/dftest/new\nline").total,
        Some(1024 * KIB)
    );
    mount(&rows, "/tmp/dftest/tab\tdir");
    assert_eq!(mount(&rows, "/tmp/dftest/srv/pg_wal").used, Some(14 * KIB));
    assert!(!rows.iter().any(|r| r.mount == "line" || r.device == "line"));

    let inodes = df::parse_df(&fixture("df/local-awkward-busybox-df-Pi.txt"));
    assert_eq!(
        mount(&inodes, "/").total,
        Some(16777216),
        "inode counts are not scaled"
    );

    // Without -P, long device names wrap onto their own line.
    let wrapped = df::parse_df(&fixture("df/local-awkward-busybox-df-k-wrapped.txt"));
    let wal = mount(&wrapped, "/tmp/dftest/srv/pg_wal");
    assert_eq!(
        wal.device,
        "/tmp/dftest/dev/mapper/vg_data_extremely_long_volume_group_name-lv_postgresql_wal_archive"
    );
    assert_eq!(wal.total, Some(56037 * KIB));
    assert_eq!(
        mount(&wrapped, "/tmp/dftest/mnt/nfs-home").device,
        "filer01.example.internal:/export/home"
    );

    let rows = df::parse_df(&fixture("df/local-awkward2-busybox-df-Pk.txt"));
    assert_eq!(
        mount(&rows, "/tmp/dftest2/mnt/cifs share").device,
        "//fileserver.example.com/Some Share/Team Data"
    );
    assert_eq!(
        mount(&rows, "/tmp/dftest2/ 123 456 7%").total,
        Some(5120 * KIB)
    );
    assert_eq!(
        mount(&rows, "/tmp/dftest2/trailing space ").total,
        Some(3072 * KIB)
    );
}

#[test]
fn df_other_systems() {
    let aix = df::parse_df(&fixture("df/facter-aix-df-P-512blocks.txt"));
    assert_eq!(mount(&aix, "/").total, Some(4194304 * 512));
    assert_eq!(mount(&aix, "/var").used, Some(3233 * 512));
    let proc_row = mount(&aix, "/proc");
    assert_eq!(
        (proc_row.total, proc_row.used),
        (None, None),
        "`-` is no value"
    );
    assert_eq!(mount(&aix, "/tmp/salam").device, "joe:/var/share");
    let bsd = df::parse_df(&fixture("df/facter-openbsd-df.txt"));
    assert_eq!(mount(&bsd, "/usr/local").total, Some(6082908 * 512));
}

#[test]
fn mounts_decode_escapes() {
    let m = df::parse_mounts(&fixture("proc/local-awkward-mounts"));
    assert_eq!(
        m.get("/tmp/dftest/mnt with spaces").map(String::as_str),
        Some("tmpfs")
    );
    assert_eq!(
        m.get("/tmp/dftest/tab\tdir").map(String::as_str),
        Some("tmpfs")
    );
    assert_eq!(
        m.get("/tmp/dftest/new\nline").map(String::as_str),
        Some("tmpfs")
    );
    assert_eq!(
        m.get("/tmp/dftest/données été").map(String::as_str),
        Some("tmpfs")
    );
    assert_eq!(df::unescape_octal(r"a\134b\777c\04"), "a\\b\\777c\\04");

    // Escaped spaces in the source and the mount point, a double and a trailing space, `%`.
    let m = df::parse_mounts(&fixture("proc/local-awkward2-mounts-subset"));
    for mount in [
        "/tmp/dftest2/mnt/cifs share",
        "/tmp/dftest2/b1  b2",
        "/tmp/dftest2/trailing space ",
        "/tmp/dftest2/50% full",
        "/tmp/dftest2/ 123 456 7%",
    ] {
        assert_eq!(m.get(mount).map(String::as_str), Some("tmpfs"), "{mount:?}");
    }
    // The mount points of the awkward df output find their types.
    let df_rows = df::parse_df(&fixture("df/local-awkward2-gnu-df-Pk.txt"));
    assert!(
        df_rows.iter().all(|r| m.contains_key(&r.mount)),
        "{df_rows:?}"
    );

    // The same device mounted several times, trailing slashes, cgroups.
    let m = df::parse_mounts(&fixture("proc/sysstat-root2-mounts"));
    assert_eq!(m.get("/srv1/").map(String::as_str), Some("ext4"));
    assert_eq!(m.get("/srv2/data").map(String::as_str), Some("ext4"));
    assert!(m.values().any(|t| t == "cgroup2") || m.values().any(|t| t == "cgroup"));
}

#[test]
fn nvidia_fixtures() {
    let h100 = nvidia::parse_nvidia(&fixture(
        "nvidia-smi/derived-h100-mig-idle-subset-noheader-nounits.csv",
    ));
    assert_eq!(h100.len(), 1);
    let g = &h100[0];
    assert_eq!(g.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(g.util_pct, None, "[N/A] under MIG is no value");
    assert_eq!(g.fan_pct, None);
    assert_eq!(g.temperature_c, Some(42.0));
    assert_eq!(g.memory_total_bytes, Some(81559 * 1024 * 1024));
    assert_eq!(g.memory_used_bytes, Some(59 * 1024 * 1024));
    assert_eq!((g.power_w, g.power_limit_w), (Some(71.15), Some(700.0)));
    assert_eq!(g.pstate.as_deref(), Some("P0"));

    let l40s = &nvidia::parse_nvidia(&fixture(
        "nvidia-smi/derived-l40s-idle-subset-noheader-nounits.csv",
    ))[0];
    assert_eq!(l40s.util_pct, Some(100.0));
    assert_eq!(l40s.memory_used_pct, Some(0.0));
    assert_eq!(l40s.driver_version.as_deref(), Some("595.80"));

    let rtx = &nvidia::parse_nvidia(&fixture(
        "nvidia-smi/derived-rtx4080super-load-subset-noheader-nounits.csv",
    ))[0];
    assert_eq!(rtx.fan_pct, Some(0.0), "0 RPM mode is a real 0");
    assert!((rtx.memory_used_pct.unwrap() - 1474.0 * 100.0 / 16376.0).abs() < 1e-9);

    // The same row with a header and units (`--format=csv`): the header is skipped, units read.
    let with_units = nvidia::parse_nvidia(&fixture("nvidia-smi/derived-h100-mig-idle-subset.csv"));
    assert_eq!(with_units, h100);

    // Full query dumps (212 and 239 columns) are not our query: nothing is guessed from them.
    assert!(
        nvidia::parse_nvidia(&fixture("nvidia-smi/h100-mig-idle-query-gpu-full.csv")).is_empty()
    );
    assert!(
        nvidia::parse_nvidia(&fixture(
            "nvidia-smi/windows-rtx2080super-610.62-load-query-gpu-full.csv"
        ))
        .is_empty()
    );
    // A CSV with a header and other columns is not our query: nothing is guessed from it.
    assert!(nvidia::parse_nvidia(&fixture("nvidia-smi/tesla-p100-header-nounits.csv")).is_empty());
}

#[test]
fn nvidia_error_values_and_several_gpus() {
    let text = "\
0, GPU-aaaa, NVIDIA GeForce GTX 1080 Ti, 418.43, 61, 97, 45, 11178, 10200, 978, 230.11, 250.00, [Unknown Error], P2, 1911
1, GPU-bbbb, NVIDIA GeForce GTX 770, 418.43, 55, [Not Supported], [Not Supported], 2048, 300, 1748, [Not Supported], [Not Supported], 40, P8, [Not Supported]
2, GPU-cccc, Tesla V100-SXM2-16GB, 470.57, ERR!, 0, 0, 16160, 0, 16160, ERR!, 300.00, N/A, P0, 1530
3, GPU-dddd, Broken, 1, , , , , , , , , , ,
";
    let gpus = nvidia::parse_nvidia(text);
    assert_eq!(gpus.len(), 4);
    assert_eq!(gpus[0].fan_pct, None);
    assert_eq!(gpus[0].util_pct, Some(97.0));
    assert_eq!(
        (gpus[1].util_pct, gpus[1].power_w, gpus[1].sm_clock_mhz),
        (None, None, None)
    );
    assert_eq!(gpus[1].temperature_c, Some(55.0));
    assert_eq!(gpus[1].fan_pct, Some(40.0));
    assert_eq!(
        (gpus[2].temperature_c, gpus[2].power_w, gpus[2].fan_pct),
        (None, None, None)
    );
    assert_eq!(gpus[2].power_limit_w, Some(300.0));
    assert_eq!(gpus[3].memory_total_bytes, None);
    assert_eq!(gpus[3].memory_used_pct, None);
    // Too few columns, garbage: skipped.
    assert!(nvidia::parse_nvidia("0, GPU-x, name\nNVIDIA-SMI has failed\n").is_empty());
}

#[test]
fn os_release_fixtures() {
    let debian = osinfo::parse_os_release(&fixture("os/local-os-release.txt"));
    assert_eq!(debian["ID"], "debian");
    assert_eq!(debian["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(debian["VERSION_ID"], "12");
    let rhel = osinfo::parse_os_release(&fixture("os/rhel-8.6-with-comments.txt"));
    assert_eq!(
        (rhel["ID"].as_str(), rhel["VERSION_ID"].as_str()),
        ("rhel", "8.6")
    );
    assert!(rhel.keys().all(|k| !k.starts_with('#')));
    let rhel9 = osinfo::parse_os_release(&fixture("os/rhel-9.6.txt"));
    assert!(
        rhel9.keys().any(|k| k.starts_with("REDHAT_")),
        "keys after the blank line"
    );
    let alpine = osinfo::parse_os_release(&fixture("os/alpine-3.23.txt"));
    assert_eq!(alpine["VERSION_ID"], "3.23.2");
    assert_eq!(
        osinfo::parse_os_release(&fixture("os/rocky-9.3.txt"))["ID_LIKE"],
        "rhel centos fedora"
    );
    assert_eq!(
        osinfo::parse_os_release(&fixture("os/centos-7.txt"))["ID"],
        "centos"
    );
    assert_eq!(
        osinfo::parse_os_release(&fixture("os/ubuntu-16.04.txt"))["VERSION_ID"],
        "16.04"
    );
    assert_eq!(
        osinfo::parse_os_release(&fixture("os/amazon-linux-2023.txt"))["ID"],
        "amzn"
    );
    assert_eq!(
        osinfo::parse_os_release(&fixture("os/freebsd-12.2-truenas-os-release.txt"))["ID"],
        "freebsd"
    );
    // Free text, not KEY=VALUE: nothing is made up.
    assert!(osinfo::parse_os_release(&fixture("os/solaris-10-etc-release.txt")).is_empty());
    let quoted =
        osinfo::parse_os_release("NAME=\"A \\\"quoted\\\" \\$name\"\nX='single'\nBAD KEY=1\n");
    assert_eq!(quoted["NAME"], "A \"quoted\" $name");
    assert_eq!(quoted["X"], "single");
    assert!(!quoted.contains_key("BAD KEY"));
}

#[test]
fn uname_fixtures() {
    let linux = osinfo::parse_uname_a(&fixture("os/local-uname.txt")).unwrap();
    assert_eq!(
        (
            linux.kernel_name.as_str(),
            linux.nodename.as_str(),
            linux.release.as_str()
        ),
        ("Linux", "vm", "6.18.44-fc-v657")
    );
    let bsd = osinfo::parse_uname_a(&fixture("os/uname-freebsd-14.0.txt")).unwrap();
    assert_eq!(
        (bsd.kernel_name.as_str(), bsd.release.as_str()),
        ("FreeBSD", "14.0-RELEASE")
    );
    let mac = osinfo::parse_uname_a(&fixture("os/uname-macos-darwin-23.5-arm64.txt")).unwrap();
    assert_eq!(
        (mac.kernel_name.as_str(), mac.release.as_str()),
        ("Darwin", "23.5.0")
    );
    assert_eq!(osinfo::parse_uname_a(""), None);
}

#[test]
fn cpuinfo_fixtures() {
    let local = osinfo::parse_cpuinfo(&fixture("proc/local-cpuinfo"));
    assert_eq!(
        (local.model.as_deref(), local.count),
        (Some("Intel(R) Xeon(R) Processor"), Some(2))
    );
    let i7 = osinfo::parse_cpuinfo(&fixture("proc/procfs-cpuinfo"));
    assert_eq!(
        (i7.model.as_deref(), i7.count),
        (Some("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"), Some(8))
    );
    let arm7 = osinfo::parse_cpuinfo(&fixture("proc/gopsutil-1037-armv7-cpuinfo"));
    assert_eq!(
        (arm7.model.as_deref(), arm7.count),
        (Some("ARMv7 Processor rev 4 (v7l)"), Some(8))
    );
    let arm64 = osinfo::parse_cpuinfo(&fixture("proc/pcp-aarch64-cpuinfo"));
    assert_eq!(
        (arm64.model.as_deref(), arm64.count),
        (Some("AArch64 Processor rev 0 (aarch64)"), Some(8))
    );
    let s390 = osinfo::parse_cpuinfo(&fixture("proc/pcp-s390x-cpuinfo"));
    assert_eq!(
        (s390.model.as_deref(), s390.count),
        (Some("IBM/S390"), Some(2))
    );
}

fn probe_output(stat: &str, net_rx: u64, disk_sectors: u64, uptime: f64) -> String {
    format!(
        "\n<<<stat>>>\n{stat}\n\n<<<meminfo>>>\n{}\n<<<loadavg>>>\n0.50 0.40 0.30 1/100 42\n\
         <<<uptime>>>\n{uptime} 100.0\n<<<net_dev>>>\nInter-| x\n face | y\n  eth0: {net_rx} 1 2 0 0 0 0 0 5000 1 3 0 0 0 0 0\n\
         <<<diskstats>>>\n 8 0 sda 1 0 {disk_sectors} 0 1 0 {disk_sectors} 0 0 0 0\n 8 1 sda1 1 0 {disk_sectors} 0 1 0 {disk_sectors} 0 0 0 0\n\
         <<<mounts>>>\n/dev/sda1 / ext4 rw 0 0\n<<<df>>>\n{}\n<<<df_inodes>>>\n{}\n<<<nvidia>>>\n\n<<<time>>>\n1700000000\n<<<end>>>\n",
        fixture("proc/local-meminfo"),
        fixture("df/local-df-Pk.txt"),
        fixture("df/local-df-Pi.txt"),
    )
}

/// The same output as the probe prints it: the /proc files through one head(1).
fn as_head_output(marked: &str) -> String {
    let mut out = marked.to_owned();
    for (i, (section, file)) in [
        ("stat", "/proc/stat"),
        ("meminfo", "/proc/meminfo"),
        ("loadavg", "/proc/loadavg"),
        ("uptime", "/proc/uptime"),
        ("net_dev", "/proc/net/dev"),
        ("diskstats", "/proc/diskstats"),
        ("mounts", "/proc/mounts"),
    ]
    .into_iter()
    .enumerate()
    {
        let header = if i == 0 {
            format!("<<<procfs>>>\n==> {file} <==")
        } else {
            format!("==> {file} <==")
        };
        out = out.replace(&format!("<<<{section}>>>"), &header);
    }
    out
}

#[test]
fn markers_count_only_as_whole_lines() {
    let text = "banner <<<df>>>\n<<<time>>>\r\n1700000000\n x <<<df>>>\n<<<<nvidia>>>\n<a> << <<<\n<<<df>>>\nlast line";
    let sections = split_sections(text);
    let mut names: Vec<&str> = sections.keys().copied().collect();
    names.sort();
    assert_eq!(names, ["<nvidia", "df", "time"]);
    assert_eq!(sections["time"], "1700000000\n x <<<df>>>\n");
    assert_eq!(sections["<nvidia"], "<a> << <<<\n");
    assert_eq!(sections["df"], "last line");
    assert!(split_sections("no markers at all\n").is_empty());
    // A marker as the very last line, with no line ending, starts an empty section.
    assert_eq!(split_sections("<<<df>>>")["df"], "");
}

#[test]
fn head_output_splits_into_the_same_sections() {
    let marked = probe_output(
        "cpu  100 0 100 800 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0",
        1000,
        0,
        500.0,
    );
    let headed = as_head_output(&marked);
    assert!(headed.contains("==> /proc/net/dev <==") && !headed.contains("<<<stat>>>"));
    assert_eq!(split_sections(&headed), split_sections(&marked));
    assert_eq!(
        build_snapshot(&headed, None, 1_000_000),
        build_snapshot(&marked, None, 1_000_000)
    );
    // A file head could not read has no header: only its section is missing.
    let no_diskstats = {
        let start = headed.find("==> /proc/diskstats <==").unwrap();
        let end = headed.find("==> /proc/mounts <==").unwrap();
        format!("{}{}", &headed[..start], &headed[end..])
    };
    let sections = split_sections(&no_diskstats);
    assert!(!sections.contains_key("diskstats"));
    assert_eq!(sections["mounts"], split_sections(&marked)["mounts"]);
    assert_eq!(sections["net_dev"], split_sections(&marked)["net_dev"]);
    // Another file's header is content, not a section.
    let odd = "<<<procfs>>>\n==> /proc/loadavg <==\n0.1 0.2 0.3 1/2 3\n==> /etc/passwd <==\nroot\n";
    assert_eq!(
        split_sections(odd)["loadavg"],
        "0.1 0.2 0.3 1/2 3\n==> /etc/passwd <==\nroot\n"
    );
}

#[test]
fn snapshot_and_rates() {
    let first = probe_output(
        "cpu  100 0 100 800 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0",
        1000,
        0,
        500.0,
    );
    let (s1, c1) = build_snapshot(&first, None, 1_000_000);
    let cpu = s1.cpu.as_ref().unwrap();
    assert_eq!(
        (cpu.count, cpu.usage_pct),
        (1, None),
        "no rate on the first poll"
    );
    assert_eq!(s1.network[0].rx_bytes_per_s, None);
    assert_eq!(s1.memory.as_ref().unwrap().total_bytes, 24684092 * KIB);
    assert_eq!(s1.load.as_ref().unwrap().one, 0.5);
    assert_eq!(s1.host_time.unwrap().timestamp(), 1700000000);
    let root = s1.disks.iter().find(|d| d.mount == "/").unwrap();
    assert_eq!(
        root.fs_type.as_deref(),
        Some("ext4"),
        "the type comes from /proc/mounts by mount point"
    );
    assert!((root.used_pct.unwrap() - 11689316.0 * 100.0 / (11689316.0 + 83596572.0)).abs() < 1e-9);
    assert!(root.inodes_used_pct.is_some());
    assert_eq!(s1.disk_io.len(), 1, "the partition is left out");
    assert!(s1.unavailable.is_empty(), "{:?}", s1.unavailable);

    // 10 s later: 2000 bytes received, 20 sectors (10240 bytes) read.
    let second = probe_output(
        "cpu  150 0 150 900 0 0 0 0\ncpu0 150 0 150 900 0 0 0 0",
        3000,
        20,
        510.0,
    );
    let (s2, c2) = build_snapshot(&second, Some(&c1), 1_010_000);
    assert_eq!(s2.cpu.as_ref().unwrap().usage_pct, Some(50.0));
    assert_eq!(s2.cpu.as_ref().unwrap().per_core[0].usage_pct, Some(50.0));
    assert_eq!(s2.network[0].rx_bytes_per_s, Some(200.0));
    assert_eq!(s2.network[0].tx_bytes_per_s, Some(0.0));
    assert_eq!((s2.network[0].rx_errors, s2.network[0].tx_errors), (2, 3));
    assert_eq!(s2.disk_io[0].read_bytes_per_s, Some(1024.0));

    // A reboot: uptime went down, counters restarted. No rate at all, not a negative one.
    let rebooted = probe_output(
        "cpu  10 0 10 80 0 0 0 0\ncpu0 10 0 10 80 0 0 0 0",
        100,
        0,
        30.0,
    );
    let (s3, c3) = build_snapshot(&rebooted, Some(&c2), 1_020_000);
    assert_eq!(s3.cpu.as_ref().unwrap().usage_pct, None);
    assert_eq!(s3.network[0].rx_bytes_per_s, None);
    // A counter wrap without a reboot: only that rate is dropped.
    let wrapped = probe_output(
        "cpu  20 0 20 100 0 0 0 0\ncpu0 20 0 20 100 0 0 0 0",
        50,
        40,
        40.0,
    );
    let (s4, _) = build_snapshot(&wrapped, Some(&c3), 1_030_000);
    assert_eq!(s4.network[0].rx_bytes_per_s, None);
    assert_eq!(s4.disk_io[0].read_bytes_per_s, Some(40.0 * 512.0 / 10.0));
    assert_eq!(s4.cpu.as_ref().unwrap().usage_pct, Some(50.0));

    // The same counters after a long gap (hostwatch was down): no rates.
    let (late, _) = build_snapshot(&second, Some(&c1), 1_000_000 + MAX_RATE_GAP_MS + 1);
    assert_eq!(late.cpu.as_ref().unwrap().usage_pct, None);
    assert_eq!(late.network[0].rx_bytes_per_s, None);

    let names: Vec<&str> = metric_values(&s2).iter().map(|m| m.name).collect();
    for n in [
        "cpu.usage_pct",
        "memory.used_pct",
        "disk.used_pct",
        "net.rx_bytes_per_s",
        "load.one",
        "load.per_core",
    ] {
        assert!(names.contains(&n), "{n} missing");
    }
    assert!(!names.contains(&"swap.used_pct"), "no swap, no swap series");
    for n in &names {
        assert!(
            crate::alerts::catalog::find(crate::alerts::catalog::Owner::Host, n).is_some(),
            "{n} is not in the metric catalog"
        );
    }
}

#[test]
fn garbage_and_truncated_sections_never_panic_or_invent() {
    let inputs = [
        "",
        "<<<stat>>>",
        "<<<stat>>>\ncpu 1 2",
        "<<<stat>>>\ncpu a b c d e f g\ncpuX 1 2 3 4\n<<<meminfo>>>\nMemTotal: lots kB\n",
        "<<<meminfo>>>\nMemTotal: 0 kB\nMemFree: 5 kB\n<<<loadavg>>>\nnan inf -1\n<<<uptime>>>\n-5\n",
        "<<<net_dev>>>\neth0: 1 2 3\n: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n<<<diskstats>>>\n8 0 sda x y z\n",
        "<<<df>>>\nFilesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 99999999999999999999999 1 1 1% /\n%%%\n",
        "<<<nvidia>>>\n,,,,,,,,,,,,,,\n<<<time>>>\nyesterday\n",
        "\u{0}\u{1}<<<>>>\n<<<<<<>>>>>>\n\u{fffd}",
    ];
    for (i, text) in inputs.iter().enumerate() {
        let (s, _) = build_snapshot(text, None, 1);
        assert!(
            s.cpu.is_none() || s.cpu.as_ref().unwrap().usage_pct.is_none(),
            "{i}"
        );
        assert!(s.memory.is_none(), "{i}: {:?}", s.memory);
        assert!(s.load.is_none(), "{i}");
        assert!(s.uptime_seconds.is_none(), "{i}");
        assert!(s.gpus.is_empty(), "{i}");
        assert!(s.host_time.is_none(), "{i}");
        assert!(s.network.is_empty() && s.disk_io.is_empty(), "{i}");
        assert!(s.disks.is_empty(), "{i}: {:?}", s.disks);
    }
    // Truncated mid-line: the complete lines still count, the cut one does not.
    let cut = "<<<stat>>>\ncpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\ncpu1 1 2";
    let (s, _) = build_snapshot(cut, None, 1);
    assert_eq!(s.cpu.unwrap().count, 1);
}
