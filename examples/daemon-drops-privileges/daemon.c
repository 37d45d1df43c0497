/* A daemon that starts as root and drops to a service user for good, in
 * the order that leaves nothing of root behind: supplementary groups
 * first (only root may change them), then the gid, then the uid. */
#define _GNU_SOURCE /* setresuid, setresgid */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SERVICE_UID 1000
#define SERVICE_GID 1000

int main(void)
{
	if (setgroups(0, NULL) != 0 || setresgid(SERVICE_GID, SERVICE_GID, SERVICE_GID) != 0 ||
	    setresuid(SERVICE_UID, SERVICE_UID, SERVICE_UID) != 0) {
		perror("dropping privileges");
		return 1;
	}
	/* Dropped for good: getting root back must fail. */
	if (setuid(0) == 0) {
		fprintf(stderr, "regained root\n");
		return 1;
	}
	puts("serving as 1000:1000");
	return 0;
}
