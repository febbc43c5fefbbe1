// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel transport: llmqd attaches to /dev/llmq as THE runtime, reads
 * the device's event stream (client opened, doorbell, client closed) with
 * an io_uring READ that stays armed, maps each client's ring through its
 * own descriptor, and wakes the clients with news once per loop turn, all
 * of them in one LLMQ_IOC_WAKE.  Documentation/userspace-api/llmq.rst
 * describes the device.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libllmq.h"
#include "llmqd.h"
#include "log.h"

static void arm_events(struct llmqd *d)
{
	struct io_uring_sqe *sqe = loop_sqe(d);

	io_uring_prep_read(sqe, d->dev_fd, d->kev, sizeof(d->kev), 0);
	io_uring_sqe_set_data(sqe, &d->ev_kevents);
}

/**
 * kernel_attach() - open /dev/llmq and attach as the runtime
 * @d:		the daemon
 *
 * The device then sends an OPEN (and a DOORBELL) for every client already
 * there, so requests queued while no runtime was attached are served.
 *
 * Return: 0, or -errno (logged): -ENOENT no module, -EPERM neither
 * CAP_SYS_ADMIN nor the module's runtime_gid, -EBUSY another runtime.
 */
int kernel_attach(struct llmqd *d)
{
	struct llmq_attach a = { .magic = LLMQ_MAGIC, .version = LLMQ_ABI_VERSION };
	int fd, err;

	fd = open(LLMQ_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_err("cannot open %s: %s", LLMQ_DEVICE, strerror(errno));
		return err;
	}
	if (ioctl(fd, LLMQ_IOC_ATTACH, &a) < 0) {
		err = -errno;
		pr_err("cannot attach to %s as the runtime: %s%s", LLMQ_DEVICE, strerror(errno),
		       errno == EBUSY ? " (another llmqd is attached)" :
		       errno == EPERM ? " (needs CAP_SYS_ADMIN or the module's runtime_gid)" : "");
		close(fd);
		return err;
	}
	d->dev_fd = fd;
	d->ev_kevents.type = EV_KEVENTS;
	arm_events(d);
	return 0;
}

static struct client *kclient(struct llmqd *d, uint32_t kid)
{
	return kid < d->nr_kclients ? d->kclients[kid] : NULL;
}

/* Make room for @kid in the table; ids are small, the device reuses them. */
static int kclients_grow(struct llmqd *d, uint32_t kid)
{
	uint32_t n = d->nr_kclients ? d->nr_kclients : 64;
	struct client **t;
	uint32_t *w;

	while (n <= kid)
		n *= 2;
	t = realloc(d->kclients, n * sizeof(*t));
	if (!t)
		return -ENOMEM;
	memset(t + d->nr_kclients, 0, (n - d->nr_kclients) * sizeof(*t));
	d->kclients = t;
	w = realloc(d->kwake, n * sizeof(*w));
	if (!w)
		return -ENOMEM;
	d->kwake = w;
	d->nr_kclients = n;
	return 0;
}

static void on_open(struct llmqd *d, const struct llmq_event *ev)
{
	struct llmq_params p = {
		.sq_entries = ev->sq_entries,
		.cq_entries = ev->cq_entries,
		.arena_size = ev->arena_size,
	};
	struct llmq_layout lay;
	struct client *c;
	void *map;

	if (kclient(d, ev->client_id)) {
		pr_warn("device: client %u opened twice", ev->client_id);
		return;
	}
	/* The device checked the geometry; a disagreement is another ABI. */
	if (llmq_params_check(&p, &lay) || lay.map_size != ev->map_size) {
		pr_err("device: client %u has a geometry we do not understand", ev->client_id);
		return;
	}
	if (kclients_grow(d, ev->client_id))
		return;
	map = mmap(NULL, lay.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, d->dev_fd,
		   (off_t)LLMQ_RT_MAP_OFF(ev->client_id));
	if (map == MAP_FAILED) {
		/* Gone already (its CLOSE follows), or out of memory. */
		pr_warn("device: cannot map client %u: %s", ev->client_id, strerror(errno));
		return;
	}
	c = client_new(d, map, &lay, &p, (pid_t)ev->pid, ev->uid);
	if (!c) {
		munmap(map, lay.map_size);
		return;
	}
	c->kid = ev->client_id;
	d->kclients[c->kid] = c;
}

static void on_event(struct llmqd *d, const struct llmq_event *ev)
{
	struct client *c;

	switch (ev->type) {
	case LLMQ_EV_OPEN:
		on_open(d, ev);
		break;
	case LLMQ_EV_DOORBELL:
		c = kclient(d, ev->client_id);
		if (c && !c->closing)
			client_doorbell(c);
		break;
	case LLMQ_EV_CLOSE:
		c = kclient(d, ev->client_id);
		if (!c)
			break;
		pr_info("client %llu (pid %d) closed", (unsigned long long)c->id, (int)c->pid);
		d->kclients[c->kid] = NULL;
		c->kid = 0;
		client_close(c);
		break;
	default:
		pr_warn("device: unknown event type %u", ev->type);
		break;
	}
}

/**
 * kernel_on_events() - the device's event read completed
 * @d:		the daemon
 * @res:	bytes read, or -errno
 */
void kernel_on_events(struct llmqd *d, int res)
{
	unsigned int i, n;

	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN) {
			arm_events(d);
			return;
		}
		/* Without its event stream the runtime is blind: stop. */
		pr_err("device: reading events failed: %s", strerror(-res));
		llmqd_stop(d, true);
		return;
	}
	n = (unsigned int)res / sizeof(d->kev[0]);
	for (i = 0; i < n; i++)
		on_event(d, &d->kev[i]);
	arm_events(d);
}

/**
 * kernel_wake() - wake @c with the next kernel_wake_flush()
 * @d:		the daemon
 * @c:		a client of the device
 */
void kernel_wake(struct llmqd *d, struct client *c)
{
	/*
	 * kclients_grow() sized kwake for every kid: a client woken twice in
	 * one turn is the only way to fill it.
	 */
	if (d->nr_kwake == d->nr_kclients)
		kernel_wake_flush(d);
	d->kwake[d->nr_kwake++] = c->kid;
	d->stats.wakeups++;
}

/**
 * kernel_wake_flush() - wake every client queued by kernel_wake()
 * @d:		the daemon
 */
void kernel_wake_flush(struct llmqd *d)
{
	struct llmq_wake w = { .ids = (uintptr_t)d->kwake };
	uint32_t done = 0;

	while (done < d->nr_kwake) {
		w.ids = (uintptr_t)(d->kwake + done);
		w.count = d->nr_kwake - done;
		if (w.count > LLMQ_WAKE_MAX)
			w.count = LLMQ_WAKE_MAX;
		if (ioctl(d->dev_fd, LLMQ_IOC_WAKE, &w) < 0)
			pr_warn("device: wake-up failed: %s", strerror(errno));
		done += w.count;
	}
	d->nr_kwake = 0;
}
