/* emit_inverse.c - the inverse of each layer of a model proved invertible,
 * the public flow-inverse functions, and the per-layer log-determinant.
 * Emitted only when the certificate has an inverse for every update; the
 * iteration counts of fixed-point inverses come from that certificate. */
#include "emit_internal.h"

/* Emits the forward code of the values root needs that are not known yet:
 * sample values of this layer, skipping the states (known) and what is done. */
static void emit_needed(E *e, int root, const bool *known, bool *done)
{
    if (root < 0 || known[root] || done[root])
        return;
    const Val *v = VAL(e, root);
    if (home(v) != H_LAYERS)
        return; /* parameter code (prepared) */
    done[root] = true;
    emit_needed(e, v->a, known, done);
    emit_needed(e, v->b, known, done);
    for (int i = 0; i < v->nargs; i++)
        emit_needed(e, v->args[i], known, done);
    op_forward(e, v);
}

static const char *tol_lit(E *e) { return e->o->fp32 ? "1e-4" : "1e-10"; }

void emit_layer_inverse(E *e, int s)
{
    const StepProgram *p = e->p;
    const Seg *sg = &p->segs[s];
    const UpdInverse *inv = e->o->cert->inverse[s];
    int line, col;
    span_line_col(e->d, sg->span, &line, &col);
    out(e, "/* line %d: the inverse of one layer: reads tout, writes tin (the updates undone in reverse) */", line);
    out(e, "SPDL_MODEL_FN int %s(real *w, size_t k, real *restrict tin, const real *restrict tout)", fn(e, S_(e, "layer%d_inv", s)));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;");
    out(e, "(void)k;");
    bool *known = ARENA_ARRAY(e->a, bool, p->nvals);
    bool *done = ARENA_ARRAY(e->a, bool, p->nvals);
    for (int i = 0; i < sg->nvars; i++)
        known[sg->inputs[i]] = true;
    for (int j = 0; j < sg->nupd; j++)
        known[sg->upd[j].value] = true;
    for (int j = sg->nupd - 1; j >= 0; j--) {
        const Update *u = &sg->upd[j];
        const UpdInfo *ui = &inv[j].info;
        const Val *nv = VAL(e, u->value);
        size_t n = nv->size * BT;
        out(e, "{");
        e->indent++;
        comment(e, nv, S_(e, "undo %s", u->what));
        (void)n;
        const char *oldp = F(e, u->old), *newp = F(e, u->value);
        switch (ui->kind) {
        case UPD_SHEAR: {
            emit_needed(e, ui->x, known, done);
            out(e, "real *restrict O = %s;", oldp);
            out(e, "const real *restrict N = %s;", newp);
            e->nptr = e->nhoist = 0;
            const char *x = operand_at(e, ui->x, nv);
            loop_open(e, nv);
            out(e, "O[i * SPDL_BT + l] = N[i * SPDL_BT + l] %s %s;", ui->sign > 0 ? "-" : "+", x);
            loop_close(e, nv);
            break;
        }
        case UPD_AFFINE: {
            emit_needed(e, ui->e, known, done);
            if (ui->t >= 0)
                emit_needed(e, ui->t, known, done);
            out(e, "real *restrict O = %s;", oldp);
            out(e, "const real *restrict N = %s;", newp);
            e->nptr = e->nhoist = 0;
            const char *ex = operand_at(e, ui->e, nv), *t = ui->t >= 0 ? operand_at(e, ui->t, nv) : "(real)0";
            loop_open(e, nv);
            out(e, "O[i * SPDL_BT + l] = (N[i * SPDL_BT + l] - %s) / %s;", t, ex);
            loop_close(e, nv);
            break;
        }
        case UPD_LINEAR: {
            int dim = VAL(e, ui->mat)->shape.dim[0];
            if (ui->t >= 0)
                emit_needed(e, ui->t, known, done);
            out(e, "real *restrict D = w + %zu;", e->scratch);
            out(e, "const real *restrict N = %s;", newp);
            e->nptr = e->nhoist = 0;
            const char *t = ui->t >= 0 ? operand_at(e, ui->t, nv) : "(real)0";
            loop_open(e, nv);
            out(e, "D[i * SPDL_BT + l] = N[i * SPDL_BT + l] - %s;", t);
            loop_close(e, nv);
            out(e, "spdl_gemm(%d, SPDL_BT, %d, w + %zu + k * %zu, %d, 1, D, SPDL_BT, %s, SPDL_BT, 0);", dim, dim,
                e->minv[s][j], (size_t)dim * dim, dim, oldp);
            break;
        }
        case UPD_RESIDUAL: {
            /* u = new - x(u), from u = new; the last pass checks the residual */
            out(e, "real *restrict O = %s;", oldp);
            out(e, "const real *restrict N = %s;", newp);
            out(e, "memcpy(O, N, sizeof(real) * %zu);", n);
            out(e, "for (int it = 0; it <= %d; it++) {", inv[j].iters);
            e->indent++;
            bool *done2 = ARENA_ARRAY(e->a, bool, p->nvals);
            memcpy(done2, done, sizeof(bool) * (size_t)p->nvals);
            emit_needed(e, ui->x, known, done2);
            out(e, "const real *restrict X = %s;", F(e, ui->x));
            out(e, "if (it == %d) { /* |u + x(u) - new| <= tol (1 + |new|) or no convergence */", inv[j].iters);
            out(e, "    for (size_t j = 0; j < %zu; j++)", n);
            out(e, "        if (!(fabs((double)(O[j] + X[j] - N[j])) <= %s * (1 + fabs((double)N[j]))))", tol_lit(e));
            out(e, "            return SPDL_ENOCONV;");
            out(e, "    break;");
            out(e, "}");
            out(e, "for (size_t j = 0; j < %zu; j++)", n);
            out(e, "    O[j] = N[j] - X[j];");
            e->indent--;
            out(e, "}");
            break;
        }
        case UPD_OTHER:
            out(e, "#error \"spdlc: an update without an inverse\"");
            break;
        }
        e->indent--;
        out(e, "}");
    }
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

void emit_prepare_inverse(E *e)
{
    const StepProgram *p = e->p;
    out(e, "/* The inverses of the orth and lu maps, per layer. */");
    out(e, "SPDL_MODEL_FN void %s(real *w)", fn(e, "prepare_inverse"));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;");
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        for (int j = 0; j < sg->nupd; j++) {
            const UpdInfo *ui = &e->o->cert->inverse[s][j].info;
            if (ui->kind != UPD_LINEAR)
                continue;
            const Val *mv = VAL(e, ui->mat);
            int n = mv->shape.dim[0];
            out(e, "for (size_t k = 0; k < %d; k++) {", sg->blk->layers);
            e->indent++;
            if (mv->op == OP_LU) {
                out(e, "spdl_lu_inverse(%d, %s, w + %zu + k * %zu);", n, F(e, mv->a), e->minv[s][j], (size_t)n * n);
            } else { /* orth: Q^{-1} = Q' */
                out(e, "const real *restrict Q = %s;", F(e, mv->id));
                out(e, "real *restrict X = w + %zu + k * %zu;", e->minv[s][j], (size_t)n * n);
                out(e, "for (size_t i = 0; i < %d; i++)", n);
                out(e, "    for (size_t c = 0; c < %d; c++)", n);
                out(e, "        X[c * %d + i] = Q[i * %d + c];", n, n);
            }
            e->indent--;
            out(e, "}");
        }
    }
    e->indent--;
    out(e, "}");
    nl(e);
}

/* Copies the declared states between a tile's S buffers and sample-major s. */
static void emit_states_io(E *e, bool to_tile, const char *arr)
{
    const Model *m = e->m;
    for (int st = 0; st < m->nstates; st++) {
        const State *S = m->states[st];
        if (S->hidden) {
            if (to_tile)
                out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->S[st], S->size * BT);
            continue;
        }
        out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
        out(e, "    for (size_t i = 0; i < %zu; i++)", S->size);
        if (to_tile)
            out(e, "        w[%zu + i * SPDL_BT + l] = l < nb ? (real)%s[(t0 + l) * %zu + %zu + i] : 0;", e->S[st], arr,
                m->state_size, S->offset);
        else
            out(e, "        if (l < nb) %s[(t0 + l) * %zu + %zu + i] = (double)w[%zu + i * SPDL_BT + l];", arr, m->state_size,
                S->offset, e->S[st]);
    }
}

void emit_inverse_public(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    const char *M = e->M;
    out(e, "int %s_flow(const double *theta, size_t batch, const double *x, double *s, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !s || !work || batch == 0)");
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
    emit_states_io(e, false, "s");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "int %s_flow_inverse(const double *theta, size_t batch, const double *s, double *s0, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !s || !s0 || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "for (size_t i = 0; i < batch * %zu; i++)", m->state_size);
    out(e, "    if (!isfinite(s[i]))");
    out(e, "        return SPDL_ENONFINITE;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    emit_states_io(e, true, "s");
    for (int s = p->nsegs - 1; s >= 0; s--) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        size_t st = e->stride[s] * BT;
        out(e, "{");
        e->indent++;
        out(e, "real *a = w + %zu, *b = a + %zu, *t;", e->tape[s], st);
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(a + %zu, w + %zu, sizeof(real) * %zu);", e->varoff[s][k] * BT, e->S[sg->vars[k]],
                m->states[sg->vars[k]]->size * BT);
        out(e, "for (size_t k = %d; k-- > 0;) {", sg->blk->layers);
        out(e, "    const int rc = %s(w, k, b, a);", fn(e, S_(e, "layer%d_inv", s)));
        out(e, "    if (rc)");
        out(e, "        return rc;");
        out(e, "    t = a;");
        out(e, "    a = b;");
        out(e, "    b = t;");
        out(e, "}");
        out(e, "(void)b;");
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(w + %zu, a + %zu, sizeof(real) * %zu);", e->S[sg->vars[k]], e->varoff[s][k] * BT,
                m->states[sg->vars[k]]->size * BT);
        e->indent--;
        out(e, "}");
    }
    emit_states_io(e, false, "s0");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    if (!e->o->cert->has_logdet)
        return;
    out(e, "int %s_logdet(const double *theta, size_t batch, const double *x, double *ld, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !ld || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "real *restrict LD = w + %zu;", e->ld);
    out(e, "memset(LD, 0, sizeof(real) * SPDL_BT);");
    out(e, "%s(w, 0, LD, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "for (size_t l = 0; l < nb; l++)");
    out(e, "    ld[t0 + l] = (double)LD[l];");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

/* After layer k of segment s: add its log-determinant to LD (per lane). */
void emit_layer_logdet(E *e, int s)
{
    const StepProgram *p = e->p;
    const Seg *sg = &p->segs[s];
    const UpdInverse *inv = e->o->cert->inverse[s];
    size_t n = e->stride[s], st = n * BT;
    const char *adj = fn(e, S_(e, "layer%d_adj", s));
    switch (e->o->cert->logdet_way[s]) {
    case LOGDET_STRUCTURE:
        break;
    case LOGDET_JACOBIAN:
        out(e, "    { /* log|det| of the layer Jacobian: row r is the adjoint of the basis vector e_r */");
        out(e, "        real *restrict jac = w + %zu, *restrict basis = jac + %zu;", e->ldwork, n * st);
        out(e, "        memset(basis, 0, sizeof(real) * %zu);", st);
        out(e, "        for (size_t r = 0; r < %zu; r++) {", n);
        out(e, "            for (int l = 0; l < SPDL_BT; l++)");
        out(e, "                basis[r * SPDL_BT + l] = 1;");
        out(e, "            %s(w, k, work + a * %zu, work + b * %zu, jac + r * %zu, basis);", adj, st, st, st);
        out(e, "            for (int l = 0; l < SPDL_BT; l++)");
        out(e, "                basis[r * SPDL_BT + l] = 0;");
        out(e, "        }");
        out(e, "        spdl_logabsdet_tile(%zu, jac, ld);", n);
        out(e, "    }");
        return;
    case LOGDET_SERIES: {
        int K = e->o->cert->series_terms[s];
        out(e, "    { /* Behrmann et al.: log det(I + J) = sum_j (-1)^(j+1) tr(J^j) / j, %d terms;", K);
        out(e, "       * tr(J^j) ~ z' J^j z over %d Rademacher probes z (Hutchinson) */", LOGDET_PROBES);
        out(e, "        real *restrict z = w + %zu, *pw = z + %zu, *nx = pw + %zu;", e->ldwork, st, st);
        out(e, "        for (uint64_t probe = 0; probe < %d; probe++) {", LOGDET_PROBES);
        out(e, "            spdl_rademacher_tile(%zu, work + a * %zu, probe * %zuu + k, z);", n, st, (size_t)1 << 20);
        out(e, "            memcpy(pw, z, sizeof(real) * %zu);", st);
        out(e, "            for (int j = 1; j <= %d; j++) { /* nx = (J - I)' pw */", K);
        out(e, "                %s(w, k, work + a * %zu, work + b * %zu, nx, pw);", adj, st, st);
        out(e, "                const real c = (real)((j & 1) ? 1 : -1) / (real)(j * %d);", LOGDET_PROBES);
        out(e, "                for (size_t i = 0; i < %zu; i++)", n);
        out(e, "                    for (int l = 0; l < SPDL_BT; l++) {");
        out(e, "                        nx[i * SPDL_BT + l] -= pw[i * SPDL_BT + l];");
        out(e, "                        ld[l] += c * z[i * SPDL_BT + l] * nx[i * SPDL_BT + l];");
        out(e, "                    }");
        out(e, "                real *t = pw;");
        out(e, "                pw = nx;");
        out(e, "                nx = t;");
        out(e, "            }");
        out(e, "        }");
        out(e, "    }");
        return;
    }
    }
    for (int j = 0; j < sg->nupd; j++) {
        const UpdInfo *ui = &inv[j].info;
        if (ui->kind == UPD_AFFINE) {
            const Val *sv = VAL(e, ui->s);
            out(e, "    for (size_t i = 0; i < %zu; i++) /* sum(s) of the coupling */", sv->size);
            out(e, "        for (int l = 0; l < SPDL_BT; l++)");
            out(e, "            ld[l] += %s[i * SPDL_BT + l];", F(e, ui->s));
        } else if (ui->kind == UPD_LINEAR && VAL(e, ui->mat)->op == OP_LU) {
            const Val *mv = VAL(e, ui->mat);
            out(e, "    { /* log|det| of lu: sum of the diagonal's logs */");
            out(e, "        const real d = spdl_lu_logdet(%d, %s);", mv->shape.dim[0], F(e, mv->a));
            out(e, "        for (int l = 0; l < SPDL_BT; l++)");
            out(e, "            ld[l] += d;");
            out(e, "    }");
        }
    }
}
