/* emit_forward.c - the forward functions: parameter code, one layer of each
 * block, loading a tile, and a tile's forward pass through every segment.
 * The adjoint (emit_adjoint.c) calls the same layer functions to recompute
 * what it does not store. */
#include "emit_internal.h"

void compute_active(E *e, Variant var)
{
    const StepProgram *p = e->p;
    for (int i = 0; i < p->nvals; i++) {
        const Val *v = p->vals[i];
        bool act;
        switch (v->op) {
        case OP_CONST: case OP_LABEL: case OP_IDENTITY: act = false; break;
        case OP_PARAM: case OP_STATE: act = true; break;
        case OP_INPUT: act = var == V_VJP; break;
        default:
            act = (v->a >= 0 && e->active[v->a]) || (v->b >= 0 && e->active[v->b]);
            for (int j = 0; j < v->nargs; j++)
                act |= e->active[v->args[j]];
        }
        e->active[i] = act && !v->dead;
    }
}

void emit_prepare(E *e)
{
    const StepProgram *p = e->p;
    out(e, "/* The parameters' address (double) or a copy of them (float) into the work buffer, then the");
    out(e, " * parameter code: once per call. */");
    out(e, "SPDL_MODEL_FN void %s(const double *theta, real *w)", fn(e, "prepare"));
    out(e, "{");
    e->indent++;
    if (!e->o->fp32) { /* no gradient until a call that makes one stores its address */
        out(e, "real *const no_grad = NULL;");
        out(e, "memcpy(w + %zu, &no_grad, sizeof no_grad);", e->gradp);
    }
    if (e->m->theta_size && !e->o->fp32) {
        out(e, "memcpy(w + %zu, &theta, sizeof theta);", e->theta);
    } else if (e->m->theta_size) {
        out(e, "for (size_t i = 0; i < %zu; i++)", e->m->theta_size);
        out(e, "    w[%zu + i] = (real)theta[i];", e->theta);
    } else { /* no parameters: a loop to 0 would be a warning (gcc -Wtype-limits) */
        out(e, "(void)theta;");
        out(e, "(void)w;");
    }
    for (int i = 0; i < p->ngcode; i++)
        op_forward(e, VAL(e, p->gcode[i]));
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (!has_layer_code(e, sg))
            continue;
        out(e, "for (size_t k = 0; k < %d; k++) {", sg->blk->layers);
        e->indent++;
        for (int i = 0; i < sg->npcode; i++)
            op_forward(e, VAL(e, sg->pcode[i]));
        e->indent--;
        out(e, "}");
    }
    e->indent--;
    out(e, "}");
    nl(e);
}

static void mark_cone(E *e, int v, bool *in)
{
    if (v < 0 || in[v] || home(VAL(e, v)) != H_LAYERS)
        return;
    in[v] = true;
    const Val *x = VAL(e, v);
    mark_cone(e, x->a, in);
    mark_cone(e, x->b, in);
    for (int i = 0; i < x->nargs; i++)
        mark_cone(e, x->args[i], in);
}

/* Whether, under --memory=invert, the inverse of a layer leaves every value
 * of the layer in its buffer, so that the adjoint need not recompute the
 * layer: when every update is a shear, affine coupling or linear map (whose
 * inverses evaluate the terms at the restored states, as emit_layer_inverse
 * does) and those terms reach every stored value. Verlet and symplectic
 * Euler layers are such. */
static bool inverse_leaves_values(E *e, int s)
{
    const Seg *sg = &e->p->segs[s];
    if (e->o->memory != MEMORY_INVERT)
        return false;
    bool *in = ARENA_ARRAY(e->a, bool, e->p->nvals);
    for (int k = 0; k < sg->nvars; k++)
        in[sg->inputs[k]] = true;
    for (int j = 0; j < sg->nupd; j++)
        in[sg->upd[j].value] = true;
    for (int j = 0; j < sg->nupd; j++) {
        const UpdInfo *ui = &e->o->cert->inverse[s][j].info;
        switch (ui->kind) {
        case UPD_SHEAR: mark_cone(e, ui->x, in); break;
        case UPD_AFFINE: mark_cone(e, ui->e, in); mark_cone(e, ui->t, in); break;
        case UPD_LINEAR: mark_cone(e, ui->t, in); break;
        default: return false;
        }
    }
    for (int i = 0; i < sg->ncode; i++) {
        int v = sg->code[i];
        if (!in[v] && !e->fused[v] && !is_alias(e, VAL(e, v)))
            return false;
    }
    return true;
}

void emit_layer(E *e, int s)
{
    const Seg *sg = &e->p->segs[s];
    int line, col;
    span_line_col(e->d, sg->span, &line, &col);
    out(e, "/* line %d: one layer of the %s block; reads tin, writes tout */", line,
        sg->blk->kind == BLOCK_FLOW ? "flow" : "repeat");
    out(e, "SPDL_MODEL_FN void %s(real *w, size_t k, const real *restrict tin, real *restrict tout)", fn(e, S_(e, "layer%d", s)));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;"); /* unused by a layer without parameters or scratch */
    out(e, "(void)k;");
    for (int i = 0; i < sg->ncode; i++)
        op_forward(e, VAL(e, sg->code[i]));
    e->indent--;
    out(e, "}");
    nl(e);
    /* the adjoint: recompute the layer from its stored input (unless stored), then reverse */
    out(e, "/* the adjoint of layer k: gout holds d loss / d tout, gin receives d loss / d tin */");
    out(e, "SPDL_MODEL_FN void %s(real *w, size_t k, const real *restrict tin, real *restrict tout, real *restrict gin, real *restrict gout)",
        fn(e, S_(e, "layer%d_adj", s)));
    out(e, "{");
    e->indent++;
    if (e->lstride[s])
        out(e, "/* --memory=store: the forward pass kept layer k's values */");
    else if (inverse_leaves_values(e, s))
        out(e, "/* --memory=invert: the layer's inverse left its values in place */");
    else
        out(e, "%s(w, k, tin, tout);", fn(e, S_(e, "layer%d", s)));
    for (int i = 0; i < sg->ncode; i++)
        e->touched[sg->code[i]] = final_var(sg, sg->code[i]) >= 0;
    for (int i = sg->ncode - 1; i >= 0; i--) {
        int v = sg->code[i];
        if (e->touched[v])
            op_adjoint(e, VAL(e, v));
    }
    for (int k = 0; k < sg->nvars; k++)
        if (!e->touched[sg->inputs[k]])
            out(e, "memset(gin + %zu, 0, sizeof(real) * %zu);", e->varoff[s][k] * BT,
                e->m->states[sg->vars[k]]->size * BT);
    out(e, "(void)w;");
    out(e, "(void)k;"); /* unused when the values are in place and the parameters shared */
    out(e, "(void)tin;");
    out(e, "(void)tout;");
    out(e, "(void)gin;");
    out(e, "(void)gout;");
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_load(E *e)
{
    const Model *m = e->m;
    out(e, "/* One tile of samples into feature-major order; lanes past nb are zero. */");
    out(e, "SPDL_MODEL_FN int %s(real *w, const double *x, const double *target, size_t t0, size_t nb)", fn(e, "load"));
    out(e, "{");
    e->indent++;
    out(e, "real *restrict X = w + %zu;", e->x);
    out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
    out(e, "    for (size_t i = 0; i < %zu; i++) {", m->nin);
    out(e, "        const double v = l < nb ? x[(t0 + l) * %zu + i] : 0.0;", m->nin);
    out(e, "        if (!isfinite(v))");
    out(e, "            return SPDL_ENONFINITE;");
    out(e, "        X[i * SPDL_BT + l] = (real)v;");
    out(e, "    }");
    if (m->ntarget) {
        out(e, "real *restrict C = w + %zu;", e->lab);
        out(e, "if (!target) {");
        out(e, "    memset(C, 0, sizeof(real) * %zu);", m->ntarget * BT);
        out(e, "    return SPDL_OK;");
        out(e, "}");
        if (m->label) {
            out(e, "for (size_t l = 0; l < SPDL_BT; l++) {");
            out(e, "    const double c = l < nb ? target[t0 + l] : 0.0;");
            out(e, "    if (!(c >= 0 && c < %d && c == floor(c)))", m->nclass);
            out(e, "        return SPDL_ELABEL;");
            out(e, "    C[l] = (real)c;");
            out(e, "}");
        } else {
            out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
            out(e, "    for (size_t i = 0; i < %zu; i++) {", m->ntarget);
            out(e, "        const double t = l < nb ? target[(t0 + l) * %zu + i] : 0.0;", m->ntarget);
            out(e, "        if (!isfinite(t))");
            out(e, "            return SPDL_ENONFINITE;");
            out(e, "        C[i * SPDL_BT + l] = (real)t;");
            out(e, "    }");
        }
    } else {
        out(e, "(void)target;");
    }
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_tile_forward(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    bool ld = e->o->cert && e->o->cert->has_inverse && e->o->cert->has_logdet;
    out(e, "/* The forward pass of one tile; keep: keep what the adjoint needs (every layer's");
    out(e, " * input, the snapshots, or nothing, by the memory mode); ld: if not NULL, add each");
    out(e, " * layer's log-determinant to it (per lane); hook: if not NULL, called with each");
    out(e, " * block's state slot before its first layer and after every layer. */");
    out(e, "SPDL_MODEL_FN void %s(real *w, int keep, real *ld, %s_hook hook, void *ctx)", fn(e, "tile_forward"), e->M);
    out(e, "{");
    e->indent++;
    out(e, "(void)keep;");
    out(e, "(void)ld;");
    bool blocks = false;
    for (int s = 0; s < p->nsegs; s++)
        blocks |= p->segs[s].kind == SEG_BLOCK;
    if (!blocks) { /* only blocks call the hook */
        out(e, "(void)hook;");
        out(e, "(void)ctx;");
    }
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind == SEG_CODE) {
            for (int i = 0; i < sg->ncode; i++)
                op_forward(e, VAL(e, sg->code[i]));
            continue;
        }
        size_t st = e->stride[s] * BT;
        int N = sg->blk->layers;
        out(e, "{");
        e->indent++;
        int line, col;
        span_line_col(e->d, sg->span, &line, &col);
        out(e, "/* line %d: %d layers */", line, N);
        /* store: slot k holds layer k's input when keeping; otherwise (and
         * in the other modes) two work slots alternate */
        size_t ws = e->o->memory == MEMORY_CHECKPOINT ? (size_t)e->nsnap[s] : 0;
        out(e, "real *tape = w + %zu, *work = tape + %zu;", e->tape[s], ws * st);
        for (int k = 0; k < sg->nvars; k++) {
            out(e, "memcpy(work + %zu, w + %zu, sizeof(real) * %zu);", e->varoff[s][k] * BT, e->S[sg->vars[k]],
                m->states[sg->vars[k]]->size * BT);
            if (e->o->memory == MEMORY_CHECKPOINT)
                out(e, "memcpy(tape + %zu, w + %zu, sizeof(real) * %zu); /* snapshot 0 */", e->varoff[s][k] * BT,
                    e->S[sg->vars[k]], m->states[sg->vars[k]]->size * BT);
        }
        out(e, "if (hook)");
        out(e, "    hook(ctx, w, %d, 0, work);", s);
        const char *keep = e->o->memory == MEMORY_STORE ? "keep" : "0";
        out(e, "for (size_t k = 0; k < %d; k++) {", N);
        out(e, "    const size_t a = %s ? k : (k & 1), b = %s ? k + 1 : ((k + 1) & 1);", keep, keep);
        out(e, "    %s(w, k, work + a * %zu, work + b * %zu);", fn(e, S_(e, "layer%d", s)), st, st);
        if (ld) {
            out(e, "    if (ld) {");
            emit_layer_logdet(e, s);
            out(e, "    }");
        }
        out(e, "    if (hook)");
        out(e, "        hook(ctx, w, %d, k + 1, work + b * %zu);", s, st);
        out(e, "}");
        out(e, "const size_t f = %s ? %d : %d;", keep, N, N & 1);
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(w + %zu, work + f * %zu + %zu, sizeof(real) * %zu);", e->S[sg->vars[k]], st,
                e->varoff[s][k] * BT, m->states[sg->vars[k]]->size * BT);
        e->indent--;
        out(e, "}");
    }
    e->indent--;
    out(e, "}");
    nl(e);
}
