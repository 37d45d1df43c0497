/* The classic bug: a daemon drops its uid and gid but forgets setgroups,
 * so it keeps root's supplementary groups (group 0 here) and with them
 * access to every file of group root. */
#define _GNU_SOURCE /* setresuid, setresgid */
#include <stdio.h>
#include <unistd.h>

#define SERVICE_UID 1000
#define SERVICE_GID 1000

int main(void)
{
	if (setresgid(SERVICE_GID, SERVICE_GID, SERVICE_GID) != 0 ||
	    setresuid(SERVICE_UID, SERVICE_UID, SERVICE_UID) != 0) {
		perror("dropping privileges");
		return 1;
	}
	puts("serving as 1000:1000 (and still in root's groups)");
	return 0;
}
