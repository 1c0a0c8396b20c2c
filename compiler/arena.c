/* arena.c - see arena.h. Blocks grow geometrically; large requests get a
 * block of their own so a 1 MB line does not waste a 1 MB block per token. */
#include "arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ArenaBlock {
    ArenaBlock *next;
    size_t cap;
    _Alignas(16) unsigned char data[];
};

void arena_init(Arena *a) { memset(a, 0, sizeof *a); }

void arena_free(Arena *a)
{
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    memset(a, 0, sizeof *a);
}

static ArenaBlock *new_block(Arena *a, size_t cap)
{
    /* calloc: memory is handed out zeroed, and fresh pages from the system
     * are zero already, so arena_alloc need not clear each allocation. */
    ArenaBlock *b = calloc(1, sizeof *b + cap);
    if (!b) {
        fputs("spdlc: fatal: out of memory\n", stderr);
        exit(3);
    }
    b->cap = cap;
    a->total += cap;
    return b;
}

void *arena_alloc(Arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    if (!a->head || a->used + size > a->cap) {
        if (size > 16384) {
            /* A private block, linked behind the head so the head keeps filling. */
            ArenaBlock *b = new_block(a, size);
            if (a->head) {
                b->next = a->head->next;
                a->head->next = b;
            } else {
                b->next = NULL;
                a->head = b;
                a->used = a->cap = size;
            }
            return b->data;
        }
        size_t cap = a->head ? a->head->cap * 2 : 65536;
        if (cap > (size_t)1 << 24)
            cap = (size_t)1 << 24;
        ArenaBlock *b = new_block(a, cap);
        b->next = a->head;
        a->head = b;
        a->used = 0;
        a->cap = cap;
    }
    void *p = a->head->data + a->used;
    a->used += size;
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void vec_push(Arena *a, PtrVec *v, void *item)
{
    if (v->len == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        void **items = ARENA_ARRAY(a, void *, cap);
        if (v->len)
            memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = item;
}
