#!/bin/sh
# Init (pid 1) of a RedLab User-mode Linux guest; started by harness/lab/uml.py.
#
# The host's / is the guest's root, read-only through hostfs.  The kernel hands us
# redlab_ctl=<control folder> as an environment variable.  The host wrote settings.sh
# there; we write back into it:
#   booted   the kernel reached init (its wall-clock time)
#   started  the command is about to run (time)
#   stdout, stderr   the command's output, visible on the host while it is written
#   status   "exit <code> <time>" or "fail <what> <detail>": written last, after sync
# Our own stdout is the UML console, which the host saves as console.log.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
ctl=$redlab_ctl
mods=/run/redlab/modules

halt_now() {
    sync
    halt -f
}

finish() {
    # Written to a temporary name and renamed so the host never reads half a status.
    printf '%s\n' "$*" > "$ctl/status.tmp" && mv "$ctl/status.tmp" "$ctl/status"
    halt_now
}

fail() {
    echo "redlab-init: failed: $*"
    finish fail "$@"
}

# Read now: the folder is on the read-only root until it is mounted writable below.
. "$ctl/settings.sh" || { echo "redlab-init: cannot read $ctl/settings.sh"; halt_now; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm

# Everything programs write to must not reach the host's disk.  /var/run is a symlink
# to /run on Debian: mounting over it again would hide the first tmpfs.
for dir in /run /tmp /var/tmp /var/lib /var/log /etc/openvswitch /var/run; do
    [ -d "$dir" ] && [ ! -L "$dir" ] && mount -t tmpfs tmpfs "$dir"
done

# Host folders (this control folder among them) come back after the tmpfs mounts, or the
# tmpfs would hide them.  The host lists parents before children.
while IFS=' ' read -r mode dir; do
    [ -n "$dir" ] || continue
    mkdir -p "$dir" && mount -t hostfs -o "$mode,$dir" none "$dir" || fail mount "$dir"
done <<END_OF_MOUNTS
$REDLAB_MOUNTS
END_OF_MOUNTS

date +%s.%N > "$ctl/booted"

ip link set lo up

# modprobe looks in /lib/modules/<release>; the UML modules live elsewhere on the host
# and / is read-only, so point modprobe at a tmpfs tree that links to them, and make the
# kernel's on-demand loading (ip link add ... type bond) use the same tree.
release=$(uname -r)
mkdir -p "$mods/lib/modules"
ln -s "/usr/lib/uml/modules/$release" "$mods/lib/modules/$release"
printf '#!/bin/sh\nexec /sbin/modprobe -d %s "$@"\n' "$mods" > /run/redlab/modprobe
chmod +x /run/redlab/modprobe
echo /run/redlab/modprobe > /proc/sys/kernel/modprobe
for module in $REDLAB_MODULES; do
    modprobe -d "$mods" "$module" || fail module "$module"
done

# Frames between namespaces (veth, bridge, bond) are delivered in softirq context, which
# the kernel hands to ksoftirqd, an ordinary task, once it is busy.  The lab's real-time
# tasks (the gap probe, the MC-LAG agents) then starve the wires themselves: on this one
# CPU, frames were delivered once a second, in the real-time throttling window, for
# seconds after a daemon's start-up held the CPU (heartbeats all sent on time, all
# received in bursts).  A wire does not wait for a busy host: ksoftirqd runs first.
for task in /proc/[0-9]*; do
    read -r comm < "$task/comm" 2>/dev/null || continue
    case $comm in
        ksoftirqd/*) chrt --fifo --pid 70 "${task#/proc/}" || fail sched "$comm" ;;
    esac
done

if [ "$REDLAB_START_OVS" = 1 ]; then
    modprobe -d "$mods" openvswitch || fail module openvswitch
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random --no-mlockall \
        || fail ovs "ovs-ctl start exited $?"
fi

cd "$REDLAB_CWD" || fail cwd "$REDLAB_CWD"
date +%s.%N > "$ctl/started"
# The command gets only the environment the host chose (env -i), not the kernel's
# leftovers (mem=, uml_dir=, ...).
redlab_command > "$ctl/stdout" 2> "$ctl/stderr" < /dev/null
code=$?
sync
finish exit "$code" "$(date +%s.%N)"
