// The one door to libzstd. Only FlexWire imports this module.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
