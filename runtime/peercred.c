// SPDX-License-Identifier: GPL-2.0
/*
 * May the peer of an admin-socket connection change llmqd?  Root at
 * connect() time always may; any other peer only while it holds
 * CAP_NET_ADMIN or CAP_SYS_ADMIN, as generic netlink's GENL_ADMIN_PERM
 * would ask of it.
 *
 * SO_PEERCRED gives the peer's pid and effective uid as they were at
 * connect(), but no capabilities: those can only be read from
 * /proc/PID/status, later, and by then the pid may name something else.
 * Two ways it could, and what closes each:
 *
 * - The peer exec()s a setuid-root or file-capability program after
 *   sending its request (same pid, new privileges: gst-ptp-helper on
 *   Debian 12 carries cap_net_admin=ep).  Such an exec, like any change of
 *   credentials, makes the process non-dumpable, and procfs then gives
 *   /proc/PID/status to root instead of to the process's euid; so the
 *   file must belong to the peer's connect-time uid, and the process's
 *   real, effective, saved and filesystem uids must all be that uid.
 * - The peer exits and its pid is reused.  With SO_PEERPIDFD (Linux 6.5)
 *   the kernel hands us a pidfd of the peer itself, which fails with ESRCH
 *   once it has exited; on Debian's 6.1 a pidfd is opened from the number.
 *   Either way the pidfd must still be alive after /proc was read, so the
 *   file read was the pidfd's process's.  What 6.1 leaves open: the peer
 *   exits and, before pidfd_open(), another process of the same uid,
 *   dumpable and holding one of the two capabilities (one the
 *   administrator gave that user), gets the very same pid.  The request
 *   then still comes from that user; see Documentation/admin-guide/llmqctl.rst.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "peercred.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77
#endif

/* A pidfd of the peer: the kernel's own where it has one, else by number. */
static int peer_pidfd(int fd, pid_t pid)
{
	socklen_t len = sizeof(int);
	int pidfd = -1;

	if (!getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len))
		return pidfd;
	if (errno != ENOPROTOOPT && errno != EINVAL)
		return -1;	/* ESRCH: the peer is gone */
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Has the process behind @pidfd exited?  (A pidfd polls readable then.) */
static bool pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) != 0;
}

/*
 * Read @pid's status: true if it is dumpable with all four uids @uid, and
 * its effective capabilities into @eff.
 */
static bool read_status(pid_t pid, uid_t uid, unsigned long long *eff)
{
	char path[64], buf[4096], *line;
	unsigned int r, e, s, f;
	bool uids = false, caps = false;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* Root's, not the process's, once it is non-dumpable. */
	if (fstat(fd, &st) || st.st_uid != uid)
		goto out;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	for (line = buf; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &s, &f) == 4)
			uids = r == uid && e == uid && s == uid && f == uid;
		else if (sscanf(line, "CapEff: %llx", eff) == 1)
			caps = true;
	}
out:
	close(fd);
	return uids && caps;
}

/**
 * peer_may_change() - may this admin-socket peer change llmqd?
 * @fd:		the connection
 * @pid:	the peer's pid, from SO_PEERCRED
 * @uid:	the peer's effective uid at connect(), from SO_PEERCRED
 *
 * Return: true for uid 0, or for a peer that still is the process it was
 * and holds CAP_NET_ADMIN or CAP_SYS_ADMIN in its effective set.
 * Anything in doubt is false.
 */
bool peer_may_change(int fd, pid_t pid, uid_t uid)
{
	const unsigned long long want = (1ULL << CAP_NET_ADMIN) | (1ULL << CAP_SYS_ADMIN);
	unsigned long long eff = 0;
	bool ok;
	int pidfd;

	if (uid == 0)
		return true;
	if (pid <= 0 || uid == (uid_t)-1)
		return false;
	pidfd = peer_pidfd(fd, pid);
	if (pidfd < 0)
		return false;
	ok = read_status(pid, uid, &eff) && (eff & want) && !pidfd_exited(pidfd);
	close(pidfd);
	return ok;
}
