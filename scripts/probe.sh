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

show() {
	[ -r "$1" ] && cat "$1" 2>/dev/null
}

# A hung network mount can block df; bound it where timeout(1) exists.
bounded() {
	if command -v timeout >/dev/null 2>&1; then
		timeout 10 "$@" 2>/dev/null
	else
		"$@" 2>/dev/null
	fi
}

section stat
show /proc/stat
section meminfo
show /proc/meminfo
section loadavg
show /proc/loadavg
section uptime
show /proc/uptime
section net_dev
show /proc/net/dev
section diskstats
show /proc/diskstats
section mounts
show /proc/mounts
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
