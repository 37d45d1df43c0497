/* A setuid-root helper (as newuidmap or ping once were): it does its one
 * privileged step as root, then drops to the user who ran it, for good,
 * before doing anything that user asked for. */
#define _GNU_SOURCE /* setresuid, setresgid */
#include <grp.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	uid_t user = getuid();
	gid_t group = getgid();

	if (geteuid() != 0) {
		fprintf(stderr, "not installed setuid root\n");
		return 1;
	}
	/* ... the privileged step would be here ... */
	if (setgroups(0, NULL) != 0 || setresgid(group, group, group) != 0 ||
	    setresuid(user, user, user) != 0) {
		perror("dropping privileges");
		return 1;
	}
	printf("done as %u\n", (unsigned)getuid());
	return 0;
}
