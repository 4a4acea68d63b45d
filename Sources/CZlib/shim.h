// zlib from Debian's zlib1g-dev, for inflating gzip files and deflated zip members.
#include <zlib.h>
