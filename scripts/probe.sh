# hostwatch probe: sent to `sh -s` on the monitored host once per poll.
# POSIX sh (dash, busybox ash, bash), read-only, no temporary files. Each section is a marker
# line <<<name>>> followed by the raw text; a missing file or tool leaves its section empty.
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# One group, read whole before it runs, stdin from /dev/null (see enroll.sh).
{

section() {
	printf '\n<<<%s>>>\n' "$1"
}

# A hung network mount can block df; bound it where timeout(1) exists.
bounded() {
	if command -v timeout >/dev/null 2>&1; then
		timeout 10 "$@" 2>/dev/null
	else
		"$@" 2>/dev/null
	fi
}

# Every /proc file in one process (a fork per file was half the probe's cost on the host):
# with several files, head(1) puts a line `==> FILE <==` before each, and skips a missing one.
section procfs
head -n 1000000 /proc/stat /proc/meminfo /proc/loadavg /proc/uptime /proc/net/dev \
	/proc/diskstats /proc/mounts 2>/dev/null
section df
bounded df -P -k
section df_inodes
bounded df -P -i
section nvidia
if command -v nvidia-smi >/dev/null 2>&1; then
	bounded nvidia-smi --query-gpu=index,uuid,name,driver_version,temperature.gpu,utilization.gpu,utilization.memory,memory.total,memory.used,memory.free,power.draw,power.limit,fan.speed,pstate,clocks.sm --format=csv,noheader,nounits
fi
section time
date +%s
section end
} </dev/null
