/* emit_adjoint.c - the reverse sweeps: the parameter code in reverse, and a
 * tile's backward pass for the loss gradient and for vector-Jacobian
 * products, under --memory=store (layer inputs taped), invert (states
 * recomputed by the proved inverse) and checkpoint (revolve from
 * snapshots). */
#include "emit_internal.h"

void emit_prepare_adj(E *e)
{
    const StepProgram *p = e->p;
    out(e, "/* The parameter code in reverse: parameter-value adjoints into the gradient. */");
    out(e, "SPDL_MODEL_FN void %s(real *w)", fn(e, "prepare_adj"));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;");
    for (int s = p->nsegs - 1; s >= 0; s--) {
        const Seg *sg = &p->segs[s];
        if (!has_layer_code(e, sg))
            continue;
        out(e, "for (size_t k = %d; k-- > 0;) {", sg->blk->layers);
        e->indent++;
        for (int i = sg->npcode - 1; i >= 0; i--)
            op_adjoint(e, VAL(e, sg->pcode[i]));
        e->indent--;
        out(e, "}");
    }
    for (int i = p->ngcode - 1; i >= 0; i--)
        op_adjoint(e, VAL(e, p->gcode[i]));
    e->indent--;
    out(e, "}");
    nl(e);
}

/* --memory=checkpoint: reverses layers [lo, hi) of a block from the snapshot
 * of layer lo's input at `level`, placing further snapshots where Revolve's
 * binomial schedule puts them. */
void emit_revolve(E *e, int s)
{
    size_t st = e->stride[s] * BT;
    int ns = e->nsnap[s];
    const char *rev = fn(e, S_(e, "reverse%d", s));
    out(e, "/* --memory=checkpoint: reverse layers [lo, hi) of block %d from the snapshot at `level` */", s);
    out(e, "SPDL_MODEL_FN void %s(real *w, size_t lo, size_t hi, int level, real **ga, real **gb)", rev);
    out(e, "{");
    e->indent++;
    out(e, "real *tape = w + %zu, *snap = tape + (size_t)level * %zu, *a = tape + %zu, *b = a + %zu, *t;", e->tape[s], st,
        (size_t)ns * st, st);
    out(e, "while (hi > lo) {");
    e->indent++;
    out(e, "const int free = %d - level - 1;", ns);
    out(e, "if (hi - lo == 1 || free == 0) {");
    out(e, "    /* no snapshot left: recompute the last layer's input from the snapshot */");
    out(e, "    memcpy(a, snap, sizeof(real) * %zu);", st);
    out(e, "    for (size_t k = lo; k + 1 < hi; k++) {");
    out(e, "        %s(w, k, a, b);", fn(e, S_(e, "layer%d", s)));
    out(e, "        t = a, a = b, b = t;");
    out(e, "    }");
    out(e, "    %s(w, hi - 1, a, b, *gb, *ga);", fn(e, S_(e, "layer%d_adj", s)));
    out(e, "    t = *ga, *ga = *gb, *gb = t;");
    out(e, "    hi--;");
    out(e, "    continue;");
    out(e, "}");
    out(e, "const size_t m = spdl_revolve_split(hi - lo, free);");
    out(e, "memcpy(a, snap, sizeof(real) * %zu);", st);
    out(e, "for (size_t k = lo; k < lo + m; k++) {");
    out(e, "    %s(w, k, a, b);", fn(e, S_(e, "layer%d", s)));
    out(e, "    t = a, a = b, b = t;");
    out(e, "}");
    out(e, "memcpy(snap + %zu, a, sizeof(real) * %zu);", st, st);
    out(e, "%s(w, lo + m, hi, level + 1, ga, gb);", rev);
    out(e, "hi = lo + m;");
    e->indent--;
    out(e, "}");
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_tile_backward(E *e, Variant var)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    compute_active(e, var);
    for (int i = 0; i < p->nvals; i++)
        e->touched[i] = false;
    for (int i = 0; i < m->nstates; i++)
        e->gs_touched[i] = false;
    if (var == V_LOSS) {
        out(e, "/* The adjoint of one tile, seeded with d loss / d (per-sample loss) = scale. */");
        out(e, "SPDL_MODEL_FN int %s(real *w, size_t nb, real scale)", fn(e, "tile_backward_loss"));
    } else {
        out(e, "/* The adjoint of one tile, seeded with dy for the output. */");
        out(e, "SPDL_MODEL_FN int %s(real *w, const double *dy, size_t t0, size_t nb)", fn(e, "tile_backward_out"));
    }
    out(e, "{");
    e->indent++;
    out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->madj_begin, e->madj_end - e->madj_begin);
    if (var == V_LOSS) {
        if (p->loss_sample >= 0) {
            out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
            out(e, "    %s[l] = l < nb ? scale : 0;", G(e, p->loss_sample));
            e->touched[p->loss_sample] = true;
        } else {
            out(e, "(void)nb;");
            out(e, "(void)scale;");
        }
    } else {
        out(e, "real *restrict GY = %s;", G(e, p->out));
        out(e, "for (size_t l = 0; l < nb; l++)");
        out(e, "    for (size_t i = 0; i < %zu; i++)", m->nout);
        out(e, "        GY[i * SPDL_BT + l] = (real)dy[(t0 + l) * %zu + i];", m->nout);
        e->touched[p->out] = true;
    }
    for (int s = p->nsegs - 1; s >= 0; s--) {
        const Seg *sg = &p->segs[s];
        if (sg->kind == SEG_CODE) {
            for (int i = sg->ncode - 1; i >= 0; i--) {
                const Val *v = VAL(e, sg->code[i]);
                if (v->op == OP_STORE ? e->gs_touched[v->index] : e->touched[v->id])
                    op_adjoint(e, v);
            }
            continue;
        }
        bool any = false;
        for (int k = 0; k < sg->nvars; k++)
            any |= e->gs_touched[sg->vars[k]];
        if (!any)
            continue;
        size_t st = e->stride[s] * BT;
        int N = sg->blk->layers;
        out(e, "{");
        e->indent++;
        out(e, "real *tape = w + %zu;", e->tape[s]);
        out(e, "real *ga = w + %zu, *gb = w + %zu, *gt;", e->gslot[2 * s], e->gslot[2 * s + 1]);
        out(e, "(void)tape;");
        out(e, "(void)gt;");
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(ga + %zu, w + %zu, sizeof(real) * %zu);", e->varoff[s][k] * BT, e->gS[sg->vars[k]],
                m->states[sg->vars[k]]->size * BT);
        if (e->o->memory == MEMORY_STORE) {
            out(e, "for (size_t k = %d; k-- > 0;) {", N);
            out(e, "    %s(w, k, tape + k * %zu, tape + (k + 1) * %zu, gb, ga);", fn(e, S_(e, "layer%d_adj", s)), st, st);
            out(e, "    gt = ga;");
            out(e, "    ga = gb;");
            out(e, "    gb = gt;");
            out(e, "}");
        } else if (e->o->memory == MEMORY_INVERT) {
            /* each layer's input is rebuilt from its output by the inverse */
            out(e, "real *cur = tape + %d * %zu, *oth = tape + %d * %zu, *t;", N & 1, st, (N + 1) & 1, st);
            out(e, "for (size_t k = %d; k-- > 0;) {", N);
            out(e, "    const int rc = %s(w, k, oth, cur);", fn(e, S_(e, "layer%d_inv", s)));
            out(e, "    if (rc)");
            out(e, "        return rc;");
            out(e, "    %s(w, k, oth, cur, gb, ga);", fn(e, S_(e, "layer%d_adj", s)));
            out(e, "    gt = ga, ga = gb, gb = gt;");
            out(e, "    t = cur, cur = oth, oth = t;");
            out(e, "}");
        } else {
            out(e, "%s(w, 0, %d, 0, &ga, &gb);", fn(e, S_(e, "reverse%d", s)), N);
        }
        out(e, "(void)gb;");
        for (int k = 0; k < sg->nvars; k++) {
            out(e, "memcpy(w + %zu, ga + %zu, sizeof(real) * %zu);", e->gS[sg->vars[k]], e->varoff[s][k] * BT,
                m->states[sg->vars[k]]->size * BT);
            e->gs_touched[sg->vars[k]] = true;
        }
        e->indent--;
        out(e, "}");
        /* values the layer reads from outside it now have contributions */
        for (int i = 0; i < sg->ncode; i++) {
            const Val *v = VAL(e, sg->code[i]);
            int ops[2] = {v->a, v->b};
            for (int j = 0; j < 2; j++)
                if (ops[j] >= 0 && home(VAL(e, ops[j])) == H_MODEL)
                    e->touched[ops[j]] = true;
            for (int j = 0; j < v->nargs; j++)
                if (home(VAL(e, v->args[j])) == H_MODEL)
                    e->touched[v->args[j]] = true;
        }
    }
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}
