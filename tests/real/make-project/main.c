/* the program that the make test builds: calls every part and checks them */
#include <stdio.h>
#include <string.h>

#define PARTS(X) X(a1) X(a2) X(a3) X(a4) X(a5) X(a6) X(a7) X(a8) X(a9) X(a10) \
	X(b1) X(b2) X(b3) X(b4) X(b5) X(b6) X(b7) X(b8) X(b9) X(b10) \
	X(c1) X(c2) X(c3) X(c4) X(c5) X(c6) X(c7) X(c8) X(c9) X(c10)
#define DECL(n) long part_##n(long);
PARTS(DECL)

static long expect(const char *id, long x)
{
	long h = x;
	for (const char *p = id; *p; p++)
		h = h * 131 + *p;
	return h % 1000003;
}

int main(void)
{
	long sum = 0;
	int n = 0;
#define CALL(id) \
	if (part_##id(7) != expect(#id, 7)) { \
		printf("ERROR part_%s(7) = %ld, expected %ld\n", #id, part_##id(7), expect(#id, 7)); \
		return 1; \
	} \
	sum += part_##id(7), n++;
	PARTS(CALL)
	printf("RESULT parts %d sum %ld\n", n, sum);
	return 0;
}
