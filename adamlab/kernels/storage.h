/* TEMPLATE for the storage type STORAGE_KIND (see each_storage.h). Inside, STORAGE is the stored
 * element's type, REAL the type it is computed in (one double in a float expression would make
 * the whole of it double, at half the vector width), SQRT and FABS its functions, LOAD and STORE
 * convert, STORE_PARAM stores a new parameter (bfloat16: stochastic rounding when the call has a
 * seed), EXACT_STORE says whether STORE keeps a REAL as it is (float32, float64: a value stored
 * may be read back for the same) and NAME(x) names x's version for this storage type. */
#if STORAGE_KIND == STORAGE_F32
#define STORAGE float
#define REAL float
#define LOAD(x) (x)
#define STORE(x) (x)
#define STORE_PARAM(x, tensor, i) (x)
#define NAME(name) NAME_PASTE(name, f32)
#elif STORAGE_KIND == STORAGE_F64
#define STORAGE double
#define REAL double
#define LOAD(x) (x)
#define STORE(x) (x)
#define STORE_PARAM(x, tensor, i) (x)
#define NAME(name) NAME_PASTE(name, f64)
#elif STORAGE_KIND == STORAGE_BF16
#define STORAGE uint16_t
#define REAL float
#define LOAD(x) bf16_load(x)
#define STORE(x) bf16_store(x)
#define STORE_PARAM(x, tensor, i) (seed ? bf16_store_stochastic((x), mix32((uint32_t)(i) * 0x9e3779b9u + seed \
                                                                  + (uint32_t)(tensor) * 0x85ebca6bu)) \
                                     : bf16_store(x))
#define NAME(name) NAME_PASTE(name, bf16)
#else
#define STORAGE _Float16
#define REAL float
#define LOAD(x) ((float)(x))
#define STORE(x) ((_Float16)(x))  /* round to nearest, ties to even */
#define STORE_PARAM(x, tensor, i) STORE(x)
#define NAME(name) NAME_PASTE(name, f16)
#endif
#if STORAGE_KIND == STORAGE_F32 || STORAGE_KIND == STORAGE_F64
#define EXACT_STORE 1
#else
#define EXACT_STORE 0
#endif
#if STORAGE_KIND == STORAGE_F64
#define SQRT sqrt
#define FABS fabs
#else
#define SQRT sqrtf
#define FABS fabsf
#endif

#include TEMPLATE

#undef STORAGE
#undef REAL
#undef SQRT
#undef FABS
#undef LOAD
#undef STORE
#undef STORE_PARAM
#undef NAME
#undef EXACT_STORE
