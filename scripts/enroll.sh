# hostwatch enrollment: sent to `sh -s` on a host when it is added (and on demand).
# Reports what the host is; with HW_PROVISION=1 (set by hostwatch in a line it prepends, together
# with HW_PUBKEY, the service's own public key) it also creates the unprivileged user `hostwatch`
# with that key, when the login is root or has passwordless sudo. Running it again changes nothing.
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# The whole script is one group, read before it runs, with stdin from /dev/null: nothing it
# starts can read the rest of the script from the SSH channel.
{

section() {
	printf '\n<<<%s>>>\n' "$1"
}

section os_release
if [ -r /etc/os-release ]; then
	cat /etc/os-release
elif [ -r /usr/lib/os-release ]; then
	cat /usr/lib/os-release
fi
section uname_s
uname -s 2>/dev/null
section uname_r
uname -r 2>/dev/null
section uname_m
uname -m 2>/dev/null
section uname_a
uname -a 2>/dev/null
section hostname
if [ -r /proc/sys/kernel/hostname ]; then
	cat /proc/sys/kernel/hostname
else
	uname -n 2>/dev/null
fi
section proc
[ -r /proc/stat ] && [ -r /proc/meminfo ] && echo yes
section cpuinfo
[ -r /proc/cpuinfo ] && cat /proc/cpuinfo
section meminfo
[ -r /proc/meminfo ] && cat /proc/meminfo
section nvidia
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi -L 2>&1
fi
section whoami
id -un 2>/dev/null

# Runs the provisioning steps as root: "$@" is the prefix that gets there (env, or sudo -n env).
# The key goes where the sshd serving this very login reads a user's authorized keys, asked of
# that sshd itself (`sshd -T` with the configuration and options it was started with), so a
# site's own AuthorizedKeysFile is honoured; files it reads for every user are never touched.
provision() {
	"$@" sh -s <<'PROVISION'
set -e
set -f
if ! id hostwatch >/dev/null 2>&1; then
	if command -v useradd >/dev/null 2>&1; then
		useradd -m -s /bin/sh hostwatch
	else
		adduser -D -s /bin/sh hostwatch
	fi
	echo "created user hostwatch"
else
	echo "user hostwatch exists"
fi
# A locked account ('!') cannot log in even with a key when sshd runs without PAM.
if command -v usermod >/dev/null 2>&1; then
	usermod -p '*' hostwatch 2>/dev/null || true
fi
home=$(awk -F: '$1 == "hostwatch" { print $6 }' /etc/passwd)
[ -n "$home" ] || { echo "no home directory for hostwatch" >&2; exit 1; }
uid=$(id -u hostwatch)
group=$(id -gn hostwatch)

# The sshd listener this login came through: the nearest ancestor whose title is the
# listener's ("sshd: /usr/sbin/sshd -D -f … [listener] …"; older sshd keep their argv).
cmd=
pid=$$
while [ -n "$pid" ] && [ "$pid" -gt 1 ] 2>/dev/null; do
	title=$(tr '\000' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	case "$title" in
	"sshd: "*" [listener]"*)
		cmd=${title#sshd: }
		cmd=${cmd%% \[listener\]*}
		break
		;;
	/*/sshd\ * | sshd\ *)
		cmd=$title
		break
		;;
	esac
	pid=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2)
done
sshd_bin=
config=
options=
if [ -n "$cmd" ]; then
	set -- $cmd
	sshd_bin=$1
	shift
	while [ $# -gt 0 ]; do
		case "$1" in
		-f) config=$2; shift ;;
		-o) options="$options -o $2"; shift ;;
		esac
		shift
	done
fi
[ -n "$sshd_bin" ] && [ -x "$sshd_bin" ] || sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
echo "sshd: $sshd_bin${config:+ -f $config}$options"
spec="user=hostwatch"
if [ -n "$HW_CONN" ]; then
	set -- $HW_CONN
	[ $# -ge 4 ] && spec="user=hostwatch,addr=$1,laddr=$3,lport=$4"
fi
if ! effective=$("$sshd_bin" -T ${config:+-f "$config"} $options -C "$spec" 2>&1); then
	echo "cannot provision: $sshd_bin -T could not read its configuration: $(printf '%s' "$effective" | tail -n 1)" >&2
	exit 1
fi
files=$(printf '%s\n' "$effective" | awk '$1 == "authorizedkeysfile" { for (i = 2; i <= NF; i++) print $i }')
echo "sshd reads authorized keys from: $(echo $files)"

# A file for hostwatch alone: relative to its home, or named by %u, %U or %h.
target=
for f in $files; do
	case "$f" in
	none) ;;
	/*%[uUh]* | [!/]*) target=$f; break ;;
	esac
done
if [ -z "$target" ]; then
	if [ -z "$files" ] || [ "$files" = none ]; then
		echo "cannot provision: this sshd reads no authorized keys file for hostwatch (AuthorizedKeysFile none)" >&2
	else
		echo "cannot provision: this sshd reads authorized keys only from $(echo $files), shared by every user; hostwatch will not add its key there" >&2
	fi
	exit 1
fi
file=$(awk -v f="$target" -v h="$home" -v u=hostwatch -v id="$uid" 'BEGIN {
	out = ""
	for (i = 1; i <= length(f); i++) {
		c = substr(f, i, 1)
		if (c == "%" && i < length(f)) {
			i++
			d = substr(f, i, 1)
			if (d == "h") out = out h
			else if (d == "u") out = out u
			else if (d == "U") out = out id
			else if (d == "%") out = out "%"
			else out = out "%" d
		} else out = out c
	}
	if (substr(out, 1, 1) != "/") out = h "/" out
	print out
}')
dir=${file%/*}
mkdir -p "$dir"
case "$dir/" in
"$home"/?*/)
	# A directory of its own inside the home (like ~/.ssh): the user's, closed to others.
	chown "hostwatch:$group" "$dir"
	chmod 700 "$dir"
	;;
esac
touch "$file"
if grep -qxF "$HW_PUBKEY" "$file"; then
	echo "key already installed in $file"
else
	printf '%s\n' "$HW_PUBKEY" >>"$file"
	echo "key installed in $file"
fi
chown "hostwatch:$group" "$file"
chmod 600 "$file"
PROVISION
}

if [ "${HW_PROVISION:-0}" = 1 ]; then
	section provision
	if [ "$(id -u)" = 0 ]; then
		provision env "HW_PUBKEY=$HW_PUBKEY" "HW_CONN=$SSH_CONNECTION" 2>&1 && echo "provisioned"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		provision sudo -n env "HW_PUBKEY=$HW_PUBKEY" "HW_CONN=$SSH_CONNECTION" 2>&1 && echo "provisioned"
	else
		echo "cannot provision: the login is not root and has no passwordless sudo"
	fi
fi
section end
} </dev/null
