/* emit_api.c - what the caller sees: the public entry points over tiles,
 * parameter initialisation and projection onto the declared bounds, the
 * model descriptor libspdl's driver reads (DESIGN §6), and M.h. */
#include "emit_internal.h"

#include "analysis.h"
#include "version.h"

/* The gradient's first entries in an adjoint array (M_NADJ: the gradient,
 * then the parameter code's adjoints): in double the tiles add into the
 * caller's array directly, so only the rest is in the work buffer. */
static size_t grad_in_place(E *e) { return e->o->fp32 ? 0 : e->m->theta_size; }

/* M_NADJ: the adjoints a tile adds, the gradient's in place and the work buffer's. */
static size_t nadj_of(E *e) { return grad_in_place(e) + e->padj_end - e->padj_begin; }

/* Start of a call that accumulates the gradient into dst (double): its
 * address into the work buffer, and dst zeroed unless it already holds a
 * sum to add to. */
static void grad_dest(E *e, const char *dst, bool zero)
{
    if (e->o->fp32)
        return;
    out(e, "memcpy(w + %zu, &%s, sizeof %s);", e->gradp, dst, dst);
    if (zero && e->m->theta_size) {
        out(e, "if (%s)", dst);
        out(e, "    memset(%s, 0, sizeof(double) * %zu);", dst, e->m->theta_size);
    }
}

/* End of such a call: the parameter code's adjoints into the gradient, then
 * (float) the gradient out of the work buffer. */
static void grad_finish(E *e, const char *dst)
{
    out(e, "%s(w);", fn(e, "prepare_adj"));
    if (e->o->fp32 && e->m->theta_size) {
        out(e, "for (size_t i = 0; i < %zu; i++)", e->m->theta_size);
        out(e, "    %s[i] = (double)w[%zu + i];", dst, e->gtheta);
    }
}

static void zero_adjoints(E *e)
{
    if (e->padj_end > e->padj_begin)
        out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->padj_begin, e->padj_end - e->padj_begin);
}

/* The training step in three parts, for a caller that runs a batch's tiles
 * on several threads (libspdl's train, DESIGN §9, runtime/tiles.c):
 * M_tile_prepare runs the parameter code into a work buffer once per batch
 * (in double keeping theta's address: theta must not change until
 * M_tile_finish),
 * M_tile_loss runs one tile on a prepared buffer and adds the tile's
 * parameter adjoint (seeded 1/batch) to adj (in double in place, so tiles
 * summed from zeroed adj in a fixed order give the same bits whichever
 * buffer ran each), M_tile_finish turns the adjoints summed over the
 * batch's tiles into the gradient. The parameter code and its adjoint run
 * once per batch, not once per tile. */
static void emit_tile_api(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    const char *M = e->M;
    const size_t nwork = e->padj_end - e->padj_begin, g0 = grad_in_place(e);
    out(e, "int %s_tile_prepare(const double *theta, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !work)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    if (e->o->memory == MEMORY_INVERT)
        out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "double %s_tile_loss(void *work, size_t batch, size_t nb, const double *x, const double *target, double *y, double *adj)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!work || !x || nb == 0 || nb > SPDL_BT || batch < nb%s)", m->ntarget ? " || !target" : "");
    out(e, "    return NAN;");
    out(e, "%s", align_work(e));
    if (nwork) {
        out(e, "if (adj)");
        out(e, "    memset(w + %zu, 0, sizeof(real) * %zu);", e->padj_begin, nwork);
    }
    grad_dest(e, "adj", false);
    out(e, "if (%s(w, x, target, 0, nb))", fn(e, "load"));
    out(e, "    return NAN;");
    out(e, "%s(w, adj != NULL, NULL, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "double total = 0;");
    if (p->loss_sample >= 0) {
        out(e, "const real *restrict L = %s;", F(e, p->loss_sample));
        out(e, "for (size_t l = 0; l < nb; l++)");
        out(e, "    total += (double)L[l];");
    }
    out(e, "if (y) {");
    out(e, "    const real *restrict Y = %s;", F(e, p->out));
    out(e, "    for (size_t l = 0; l < nb; l++)");
    out(e, "        for (size_t i = 0; i < %zu; i++)", m->nout);
    out(e, "            y[l * %zu + i] = (double)Y[i * SPDL_BT + l];", m->nout);
    out(e, "}");
    out(e, "if (adj) {");
    out(e, "    if (%s(w, nb, (real)(1.0 / (double)batch)))", fn(e, "tile_backward_loss"));
    out(e, "        return NAN;");
    if (nwork) {
        out(e, "    for (size_t i = 0; i < %zu; i++)", nwork);
        out(e, "        adj[%zu + i] += (double)w[%zu + i];", g0, e->padj_begin);
    }
    out(e, "}");
    out(e, "return total;");
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "double %s_tile_finish(void *work, const double *adj, double *grad)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!work || (adj && !grad))");
    out(e, "    return NAN;");
    out(e, "%s", align_work(e));
    out(e, "(void)w;");
    out(e, "double loss = 0;");
    if (p->loss_param >= 0) { /* the parameter-only terms, once; a constant has no gradient (DESIGN §3) */
        const Val *lp = VAL(e, p->loss_param);
        if (is_lit(lp))
            out(e, "loss += %s;", lit(e, lp->num));
        else
            out(e, "loss += (double)%s[0];", F(e, p->loss_param));
    }
    out(e, "if (adj) {");
    e->indent++;
    if (nwork) {
        out(e, "for (size_t i = 0; i < %zu; i++)", nwork);
        out(e, "    w[%zu + i] = (real)adj[%zu + i];", e->padj_begin, g0);
    }
    if (g0) {
        grad_dest(e, "grad", false);
        out(e, "memcpy(grad, adj, sizeof(double) * %zu);", g0);
    }
    if (p->loss_param >= 0 && VAL(e, p->loss_param)->vary != VARY_CONST)
        out(e, "%s[0] += 1;", G(e, p->loss_param));
    grad_finish(e, "grad");
    e->indent--;
    out(e, "}");
    out(e, "return loss;");
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_public(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    const char *M = e->M;
    /* parameter table */
    out(e, "static const spdl_param %s_param_table[] = {", M);
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        char shape[128] = "";
        int n = 0;
        for (int d = 0; d < 6; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%d", d ? ", " : "", d < pm->store.rank ? pm->store.dim[d] : 0);
        out(e, "    {\"%s\", %zu, %zu, %d, %d, {%s}},", pm->name, pm->offset, pm->size, pm->layers, pm->store.rank, shape);
    }
    if (!m->nparams)
        out(e, "    {\"\", 0, 0, 0, 0, {0, 0, 0, 0, 0, 0}},");
    out(e, "};");
    nl(e);
    out(e, "const spdl_param *%s_params(size_t *count)", M);
    out(e, "{");
    out(e, "    if (count)");
    out(e, "        *count = %d;", m->nparams);
    out(e, "    return %s_param_table;", M);
    out(e, "}");
    nl(e);
    out(e, "size_t %s_work_size(size_t batch)", M);
    out(e, "{");
    out(e, "    (void)batch; /* tiles of SPDL_BT samples: the size does not depend on the batch */");
    out(e, "    return sizeof(real) * %zu + 64;", e->total);
    out(e, "}");
    nl(e);
    /* forward */
    out(e, "int %s_forward(const double *theta, size_t batch, const double *x, double *y, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !y || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s(w, 0, NULL, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "const real *restrict Y = %s;", F(e, p->out));
    out(e, "for (size_t l = 0; l < nb; l++)");
    out(e, "    for (size_t i = 0; i < %zu; i++)", m->nout);
    out(e, "        y[(t0 + l) * %zu + i] = (double)Y[i * SPDL_BT + l];", m->nout);
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    /* loss and gradient */
    out(e, "double %s_loss_grad(const double *theta, size_t batch, const double *x, const double *target, double *grad, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !work || batch == 0%s)", m->ntarget ? " || !target" : "");
    out(e, "    return NAN;");
    out(e, "%s", align_work(e));
    zero_adjoints(e);
    out(e, "%s(theta, w);", fn(e, "prepare"));
    grad_dest(e, "grad", true);
    if (e->o->memory == MEMORY_INVERT)
        out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "double total = 0;");
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "if (%s(w, x, target, t0, nb))", fn(e, "load"));
    out(e, "    return NAN;");
    out(e, "%s(w, grad != NULL, NULL, NULL, NULL);", fn(e, "tile_forward"));
    if (p->loss_sample >= 0) {
        out(e, "const real *restrict L = %s;", F(e, p->loss_sample));
        out(e, "for (size_t l = 0; l < nb; l++)");
        out(e, "    total += (double)L[l];");
    }
    out(e, "if (grad && %s(w, nb, (real)(1.0 / (double)batch)))", fn(e, "tile_backward_loss"));
    out(e, "    return NAN;");
    e->indent--;
    out(e, "}");
    out(e, "double loss = total / (double)batch;");
    if (p->loss_param >= 0) { /* the parameter-only terms, once; a constant has no gradient (DESIGN §3) */
        const Val *lp = VAL(e, p->loss_param);
        if (is_lit(lp))
            out(e, "loss += %s;", lit(e, lp->num));
        else
            out(e, "loss += (double)%s[0];", F(e, p->loss_param));
        if (lp->vary != VARY_CONST) {
            out(e, "if (grad)");
            out(e, "    %s[0] += 1;", G(e, p->loss_param));
        }
    }
    out(e, "if (grad) {");
    e->indent++;
    grad_finish(e, "grad");
    e->indent--;
    out(e, "}");
    out(e, "return loss;");
    e->indent--;
    out(e, "}");
    nl(e);
    emit_tile_api(e);
    /* vjp */
    out(e, "int %s_vjp(const double *theta, size_t batch, const double *x, const double *dy, double *dx, double *dtheta, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !dy || !work || batch == 0 || (!dx && !dtheta))");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    zero_adjoints(e);
    out(e, "%s(theta, w);", fn(e, "prepare"));
    grad_dest(e, "dtheta", true);
    if (e->o->memory == MEMORY_INVERT)
        out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s(w, 1, NULL, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "const int brc = %s(w, dy, t0, nb);", fn(e, "tile_backward_out"));
    out(e, "if (brc)");
    out(e, "    return brc;");
    out(e, "if (dx) {");
    out(e, "    const real *restrict GX = w + %zu;", e->gx);
    out(e, "    for (size_t l = 0; l < nb; l++)");
    out(e, "        for (size_t i = 0; i < %zu; i++)", m->nin);
    out(e, "            dx[(t0 + l) * %zu + i] = (double)GX[i * SPDL_BT + l];", m->nin);
    out(e, "}");
    e->indent--;
    out(e, "}");
    out(e, "if (dtheta) {");
    e->indent++;
    grad_finish(e, "dtheta");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    /* trajectory */
    size_t rows = 0;
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK)
            rows += (size_t)p->segs[s].blk->layers + 1;
    /* the hook copies each block's states into the caller's array */
    out(e, "typedef struct { double *traj; size_t t0, nb; } %s_traj_ctx;", M);
    nl(e);
    out(e, "SPDL_MODEL_FN void %s(void *ctx, real *w, int seg, size_t k, const real *slot)", fn(e, "traj_hook"));
    out(e, "{");
    e->indent++;
    out(e, "const %s_traj_ctx *c = ctx;", M);
    out(e, "double *traj = c->traj;");
    out(e, "const size_t t0 = c->t0, nb = c->nb;");
    out(e, "(void)w;");
    out(e, "(void)slot;");
    out(e, "switch (seg) {");
    size_t row = 0;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        out(e, "case %d:", s);
        e->indent++;
        for (int st = 0; st < m->nstates; st++) {
            int k = block_var(sg, st);
            const State *S = m->states[st];
            if (S->hidden)
                continue;
            /* block vars from the slot; other states as the block sees them */
            out(e, "for (size_t l = 0; l < nb; l++)");
            out(e, "    for (size_t i = 0; i < %zu; i++)", S->size);
            if (k >= 0)
                out(e, "        traj[((t0 + l) * %zu + %zu + k) * %zu + %zu + i] = (double)slot[(%zu + i) * SPDL_BT + l];", rows,
                    row, m->state_size, S->offset, e->varoff[s][k]);
            else
                out(e, "        traj[((t0 + l) * %zu + %zu + k) * %zu + %zu + i] = (double)w[%zu + i * SPDL_BT + l];", rows,
                    row, m->state_size, S->offset, e->S[st]);
        }
        out(e, "break;");
        e->indent--;
        row += (size_t)sg->blk->layers + 1;
    }
    out(e, "default:");
    out(e, "    (void)traj, (void)t0, (void)nb, (void)k;");
    out(e, "}");
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "/* Every state at the start and after each layer of every block (for plots). */");
    out(e, "int %s_trajectory(const double *theta, size_t batch, const double *x, double *traj, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !traj || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s_traj_ctx ctx = {traj, t0, nb};", M);
    out(e, "%s(w, 0, NULL, %s, &ctx);", fn(e, "tile_forward"), fn(e, "traj_hook"));
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_init_project(E *e)
{
    const Model *m = e->m;
    const char *M = e->M;
    out(e, "/* Norm bounds (rigorous upper bounds, rescaling when exceeded) and the step simplex. */");
    out(e, "void %s_project(double *theta)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta)");
    out(e, "    return;");
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        if (pm->kind == PK_STEPS) {
            const Block *b = pm->block;
            double T = b->t1 - b->t0;
            out(e, "/* %s: 0 <= dt_k <= %g, sum dt_k = %g */", pm->name, b->has_hmax ? b->hmax : T, T);
            out(e, "spdl_project_capped_simplex(%d, theta + %zu, %s, %s);", pm->layers, pm->offset,
                lit(e, b->has_hmax ? b->hmax : T), lit(e, T));
            continue;
        }
        if (!pm->has_norm || pm->kind == PK_ORTH)
            continue;
        int r = pm->shape.dim[0], c = pm->shape.dim[1];
        out(e, "/* %s: norm <= %g */", pm->name, pm->norm_bound);
        out(e, "for (size_t k = 0; k < %d; k++) {", pm->layers);
        e->indent++;
        out(e, "double *P = theta + %zu + k * %zu;", pm->offset, pm->nstore);
        if ((pm->kind == PK_LIFT || pm->kind == PK_GCONV) && pm->group->kind != GROUP_Z) {
            /* C4/D4: the operator norm on the grid, from the symbols on its torus (DESIGN §8) */
            int n = an_conv_grid(e->p, pm);
            const char *dims = S_(e, "%d, %d, %d, %d, %d, %d", pm->group->order, pm->kind == PK_GCONV, pm->cout, pm->cin,
                                  pm->ksize, n);
            out(e, "double S[SPDL_GNORM_SCRATCH(%s)]; /* the map on %d x %d grids */", dims, n, n);
            out(e, "spdl_gconv_project(%s, P, %s, S);", dims, lit(e, pm->norm_bound));
            e->indent--;
            out(e, "}");
            continue;
        }
        if (pm->kind == PK_GCONV) { /* the operator norm on Z(n) sequences, from the kernel's symbols */
            out(e, "double M[4 * %d * %d];", pm->cout, pm->cin);
            out(e, "const double bound = spdl_zconv_norm_upper(%d, %d, %d, %d, P, M);", pm->cout, pm->cin, pm->ksize,
                pm->group->n);
        } else if (pm->kind == PK_SKEW) {
            out(e, "double A[%d * %d];", r, r);
            out(e, "size_t q = 0;");
            out(e, "for (size_t i = 0; i < %d; i++) {", r);
            out(e, "    A[i * %d + i] = 0;", r);
            out(e, "    for (size_t j = i + 1; j < %d; j++, q++) {", r);
            out(e, "        A[i * %d + j] = P[q];", r);
            out(e, "        A[j * %d + i] = -P[q];", r);
            out(e, "    }");
            out(e, "}");
            out(e, "const double bound = spdl_norm2_upper(%d, %d, A, %s, 1e-3);", r, r, lit(e, pm->norm_bound));
        } else {
            out(e, "const double bound = spdl_norm2_upper(%d, %d, P, %s, 1e-3);", r, c, lit(e, pm->norm_bound));
        }
        out(e, "if (bound > %s) {", lit(e, pm->norm_bound));
        out(e, "    const double scale = %s / bound * (1 - 0x1p-50);", lit(e, pm->norm_bound));
        out(e, "    for (size_t i = 0; i < %zu; i++)", pm->nstore);
        out(e, "        P[i] *= scale;");
        out(e, "}");
        e->indent--;
        out(e, "}");
    }
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "/* Deterministic initialisation: N(0, 1/fan_in) for matrices and kernels, zero biases, dt = T/N. */");
    out(e, "void %s_init(double *theta, uint64_t seed)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta)");
    out(e, "    return;");
    out(e, "uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x5350444cull;");
    out(e, "(void)s;");
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        if (pm->kind == PK_STEPS) {
            out(e, "for (size_t i = 0; i < %zu; i++) /* %s */", pm->size, pm->name);
            out(e, "    theta[%zu + i] = %s;", pm->offset, lit(e, pm->block->h));
            continue;
        }
        double fan = 0;
        if (pm->kind == PK_SKEW)
            fan = pm->shape.dim[0];
        else if ((pm->kind == PK_FREE && pm->shape.rank >= 2) || pm->kind == PK_LIFT || pm->kind == PK_GCONV)
            fan = (double)shape_size(pm->shape) / pm->shape.dim[0]; /* kernels: cin x taps (x |G|) */
        if (fan == 0) {
            out(e, "memset(theta + %zu, 0, sizeof(double) * %zu); /* %s */", pm->offset, pm->size, pm->name);
            continue;
        }
        out(e, "for (size_t i = 0; i < %zu; i++) /* %s */", pm->size, pm->name);
        out(e, "    theta[%zu + i] = spdl_rng_normal(&s) * %s;", pm->offset, lit(e, 1 / sqrt(fan)));
    }
    out(e, "%s_project(theta);", M);
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_descriptor(E *e)
{
    const Model *m = e->m;
    const StepProgram *p = e->p;
    const char *M = e->M;
    size_t rows = 0;
    int nblocks = 0;
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK) {
            rows += (size_t)p->segs[s].blk->layers + 1;
            nblocks++;
        }
    out(e, "static const double %s_norm_bounds[] = {", M);
    for (int i = 0; i < m->nparams; i++)
        out(e, "    %s, /* %s */", m->params[i]->has_norm ? lit(e, m->params[i]->norm_bound) : "NAN", m->params[i]->name);
    if (!m->nparams)
        out(e, "    NAN,");
    out(e, "};");
    out(e, "static const unsigned char %s_learned_steps[] = {", M);
    for (int i = 0; i < m->nparams; i++)
        out(e, "    %d, /* %s */", m->params[i]->kind == PK_STEPS, m->params[i]->name);
    if (!m->nparams)
        out(e, "    0,");
    out(e, "};");
    nl(e);
    const Val *ov = VAL(e, p->out);
    out(e, "const spdl_model *%s_model(void)", M);
    out(e, "{");
    e->indent++;
    out(e, "static const spdl_model model = {");
    out(e, "    \"%s\", \"%s\", %zu, %zu, %zu, %zu, %zu, %d, %d, {%d, %d, %d, %d}, %d, %zu,", m->name, e->o->source_hash, m->nin,
        m->nout, m->state_size, m->theta_size, m->ntarget, m->nclass, m->in_shape.rank, m->in_shape.dim[0],
        m->in_shape.rank > 1 ? m->in_shape.dim[1] : 0, m->in_shape.rank > 2 ? m->in_shape.dim[2] : 0,
        m->in_shape.rank > 3 ? m->in_shape.dim[3] : 0, nblocks, rows);
    out(e, "    %s_params, %s_work_size, %s_init, %s_project, %s_forward, %s_loss_grad, %s_vjp, %s_trajectory,", M, M, M,
        M, M, M, M, M);
    bool inv = e->o->cert && e->o->cert->has_inverse, ldt = inv && e->o->cert->has_logdet;
    out(e, "    %s, %s, %s,", inv ? S_(e, "%s_flow", M) : "NULL", inv ? S_(e, "%s_flow_inverse", M) : "NULL",
        ldt ? S_(e, "%s_logdet", M) : "NULL");
    out(e, "    %s, %d, %s_norm_bounds, %d,", isinf(e->o->lipschitz) || isnan(e->o->lipschitz) ? "INFINITY" : S_(e, "%.17g", e->o->lipschitz),
        ov->op == OP_SOFTMAX, M, p->density);
    Shape ts = m->target ? m->target->type.shape : (Shape){0};
    out(e, "    %d, {%d, %d, %d, %d},", ts.rank, ts.rank > 0 ? ts.dim[0] : 0, ts.rank > 1 ? ts.dim[1] : 0,
        ts.rank > 2 ? ts.dim[2] : 0, ts.rank > 3 ? ts.dim[3] : 0);
    out(e, "    SPDL_BT, %zu, %s_tile_prepare, %s_tile_loss, %s_tile_finish, %s_learned_steps,", nadj_of(e),
        M, M, M, M);
    out(e, "};");
    out(e, "return &model;");
    e->indent--;
    out(e, "}");
}

void emit_header(E *e)
{
    const Model *m = e->m;
    const char *M = e->M;
    out(e, "/* %s.h - generated by spdlc %s from %s (source hash %s). Do not edit. */", M, SPDL_VERSION,
        e->o->source_path, e->o->source_hash);
    out(e, "#ifndef SPDL_MODEL_%s_H", M);
    out(e, "#define SPDL_MODEL_%s_H", M);
    nl(e);
    out(e, "#include <stddef.h>");
    out(e, "#include <stdint.h>");
    nl(e);
    out(e, "#include \"spdl.h\"");
    nl(e);
    out(e, "#ifdef __cplusplus");
    out(e, "extern \"C\" {");
    out(e, "#endif");
    nl(e);
    out(e, "enum { %s_NIN = %zu, %s_NOUT = %zu, %s_NSTATE = %zu, %s_NPARAM = %zu, %s_NTARGET = %zu };", M, m->nin, M,
        m->nout, M, m->state_size, M, m->theta_size, M, m->ntarget);
    nl(e);
    out(e, "const spdl_param *%s_params(size_t *count);", M);
    out(e, "size_t %s_work_size(size_t batch);", M);
    out(e, "void   %s_init(double *theta, uint64_t seed);", M);
    out(e, "void   %s_project(double *theta);", M);
    out(e, "int    %s_forward(const double *theta, size_t batch, const double *x, double *y, void *work);", M);
    out(e, "double %s_loss_grad(const double *theta, size_t batch, const double *x,", M);
    out(e, "                     const double *target, double *grad, void *work);");
    out(e, "int    %s_vjp(const double *theta, size_t batch, const double *x, const double *dy,", M);
    out(e, "              double *dx, double *dtheta, void *work);");
    out(e, "int    %s_trajectory(const double *theta, size_t batch, const double *x, double *traj, void *work);", M);
    if (e->o->cert && e->o->cert->has_inverse) {
        out(e, "/* the model is proved invertible (see spdlc check): */");
        out(e, "int    %s_flow(const double *theta, size_t batch, const double *x, double *s, void *work);", M);
        out(e, "int    %s_flow_inverse(const double *theta, size_t batch, const double *s, double *s0, void *work);", M);
        if (e->o->cert->has_logdet)
            out(e, "int    %s_logdet(const double *theta, size_t batch, const double *x, double *ld, void *work);", M);
    }
    out(e, "/* the training step in parts, for callers that split a batch's tiles across threads: */");
    out(e, "enum { %s_TILE = %d, %s_NADJ = %zu };", M, BT, M, nadj_of(e));
    out(e, "int    %s_tile_prepare(const double *theta, void *work);", M);
    out(e, "double %s_tile_loss(void *work, size_t batch, size_t nb, const double *x, const double *target,", M);
    out(e, "                     double *y, double *adj);");
    out(e, "double %s_tile_finish(void *work, const double *adj, double *grad);", M);
    out(e, "const spdl_model *%s_model(void);", M);
    nl(e);
    out(e, "#ifdef __cplusplus");
    out(e, "}");
    out(e, "#endif");
    nl(e);
    out(e, "#endif");
}
