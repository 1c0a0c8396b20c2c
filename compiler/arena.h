/* arena.h - region allocation for the compiler.
 *
 * Every AST node, type, IR instruction and string the compiler makes lives in
 * one arena that is freed once at exit: no phase frees anything, so no phase
 * can leak or double-free. */
#ifndef SPDL_ARENA_H
#define SPDL_ARENA_H

#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;
    size_t used, cap;       /* of the head block */
    size_t total;           /* bytes requested from malloc, for -d stats */
} Arena;

void  arena_init(Arena *a);
void  arena_free(Arena *a);
/* Zeroed, 16-byte aligned; aborts with a message if memory is exhausted. */
void *arena_alloc(Arena *a, size_t size);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A growable array of pointers whose storage lives in the arena. */
typedef struct PtrVec {
    void **items;
    int len, cap;
} PtrVec;
void vec_push(Arena *a, PtrVec *v, void *item);

#define ARENA_NEW(a, T) ((T *)arena_alloc((a), sizeof(T)))
#define ARENA_ARRAY(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n)))

#endif
