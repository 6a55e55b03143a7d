/*
 * json.c - strings in the JSON that --json prints.
 *
 * Names, paths and command lines come from users and programs: a quote, a
 * backslash or a control character in them must not break the object.
 */
#include <stdio.h>
#include "cli.h"

const char *co_json_esc(const char *s, char *out, size_t n)
{
	size_t k = 0;
	if (!n)
		return "";
	for (; s && *s && k + 7 < n; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[k++] = '\\';
			out[k++] = (char)c;
		} else if (c < 0x20) {
			k += (size_t)snprintf(out + k, n - k, "\\u%04x", c);
		} else {
			out[k++] = (char)c;
		}
	}
	out[k] = 0;
	return out;
}
