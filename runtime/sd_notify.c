// SPDX-License-Identifier: GPL-2.0
/*
 * Telling systemd how llmqd is doing (Type=notify): one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET, the protocol sd_notify(3)
 * describes, without linking libsystemd for it.  Nothing happens when the
 * variable is unset, as when llmqd runs outside systemd.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd_notify.h"

/**
 * sd_notifyf() - send systemd a state, "READY=1", "STOPPING=1", ...
 * @fmt:	printf format of the newline-separated assignments
 *
 * Return: 1 if sent, 0 if not asked for ($NOTIFY_SOCKET unset), -errno.
 * llmqd carries on either way: a lost notice costs systemd's timeout, not
 * the service.
 */
int sd_notifyf(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char msg[512];
	socklen_t len;
	va_list ap;
	ssize_t n;
	int fd, err = 0;

	if (!path || !*path)
		return 0;
	/* A path, or '@' for an abstract name; vsock addresses are not ours. */
	if ((path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sun.sun_path))
		return -EAFNOSUPPORT;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
	if (n < 0)
		err = -errno;
	close(fd);
	return err ? err : 1;
}
