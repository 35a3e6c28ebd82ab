#include "cflexmath.h"
