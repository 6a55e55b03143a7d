/*
 * ctty - the controlling terminal.  Run on a terminal (the harness uses
 * script(1) to give it one), the program notes at start whether it has a
 * controlling terminal (/dev/tty opens) and whether its process group is the
 * terminal's foreground group; every 50 ms it checks that both still hold,
 * so a restart that loses the terminal or leaves the program in the
 * background fails.  Prints one line per ten steps and RESULT.
 */
#include "common.h"
#include <fcntl.h>
#include <termios.h>

#define STEPS 60

static int has_ctty(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

int main(void)
{
	t_prog = "ctty";
	int tty = has_ctty(), fg = tty && tcgetpgrp(1) == getpgrp();
	printf("controlling terminal %s, foreground %s\n", tty ? "yes" : "no", fg ? "yes" : "no");
	fflush(stdout);
	for (int i = 1; i <= STEPS; i++) {
		t_sleep_ms(50);
		CHECK(has_ctty() == tty, "step %d: controlling terminal %s", i, tty ? "lost" : "gained");
		CHECK(!fg || tcgetpgrp(1) == getpgrp(), "step %d: no longer in the terminal's foreground", i);
		if (i % 10 == 0) {
			printf("step %d ok\n", i);
			fflush(stdout);
		}
	}
	printf("RESULT %d %d\n", tty, fg);
	return 0;
}
