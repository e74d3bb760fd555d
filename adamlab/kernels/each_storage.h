/* Includes TEMPLATE, a hand-written kernel's loops, once per storage type (storage.h sets the
 * macros it is written in): float32, float64, and bfloat16 and float16 computed in float32 (each
 * value rounded once, when stored). */
#define NAME_PASTE_(name, suffix) name##_##suffix
#define NAME_PASTE(name, suffix) NAME_PASTE_(name, suffix)

#define STORAGE_F32 1
#define STORAGE_F64 2
#define STORAGE_BF16 3
#define STORAGE_F16 4

#define STORAGE_KIND STORAGE_F32
#include "storage.h"
#undef STORAGE_KIND
#define STORAGE_KIND STORAGE_F64
#include "storage.h"
#undef STORAGE_KIND
#define STORAGE_KIND STORAGE_BF16
#include "storage.h"
#undef STORAGE_KIND
#ifdef __FLT16_MAX__  /* a compiler with _Float16 (GCC 12, clang 15 and later): float16 storage */
#define STORAGE_KIND STORAGE_F16
#include "storage.h"
#undef STORAGE_KIND
#endif
