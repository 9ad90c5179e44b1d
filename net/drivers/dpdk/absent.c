/*
 * absent.c - the dpdk driver in a build without DPDK (libdpdk-dev was not
 * installed when meson configured): it says so instead of failing to link.
 */
#include <errno.h>

#include "skerry/log.h"
#include "skerry/netdev.h"

int sk_netdev_dpdk(const char *vdev, const char *eal_args, unsigned nqueues,
		   const uint8_t *mac, struct sk_netdev **out)
{
	(void)vdev;
	(void)eal_args;
	(void)nqueues;
	(void)mac;
	(void)out;
	sk_log_error("this skerry was built without DPDK: install libdpdk-dev and "
		     "reconfigure (meson setup --reconfigure BUILD)");
	return -ENOTSUP;
}

bool sk_netdev_dpdk_built(void)
{
	return false;
}
