// CFlexMath: the libm functions the numeric core needs, as inline wrappers so that host Swift and
// Embedded Swift (which has no Foundation/Glibc) call the same code.
#ifndef FLEXMOE_CFLEXMATH_H
#define FLEXMOE_CFLEXMATH_H
#include <math.h>
static inline float flex_expf(float x) { return expf(x); }
static inline float flex_logf(float x) { return logf(x); }
static inline float flex_cosf(float x) { return cosf(x); }
static inline float flex_sinf(float x) { return sinf(x); }
static inline float flex_powf(float x, float y) { return powf(x, y); }
static inline double flex_exp(double x) { return exp(x); }
static inline double flex_log(double x) { return log(x); }
static inline double flex_cos(double x) { return cos(x); }
static inline double flex_pow(double x, double y) { return pow(x, y); }
#endif
