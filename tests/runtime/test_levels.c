/* test_levels.c - prolongation between the levels of spdlc build --levels
 * (levels.c), on hand-made descriptors whose numbers are worked out here
 * from the rule in levels.h: a per-layer matrix over 2 -> 4 layers, a
 * shared vector, a repeat block's per-layer vector (its copies stay), and
 * learned steps; and the level checks that refuse descriptors that are
 * not one model at doubling layers. The level metadata of checkpoints
 * (weights.c) is read back strictly. The levels of --grid-levels: one
 * parameter list, the input's grid halved; their data restricted by 2x2
 * means, worked out here by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "levels.h"
#include "weights.h"

/* K : R[1, 2] per layer of a flow, c : R[2] shared, r : R[1] per layer of a repeat block (3 layers),
   dt : learned steps of the flow */
static const spdl_param coarse_table[] = {
    {"K", 0, 4, 2, 2, {1, 2, 0, 0}},
    {"c", 4, 2, 1, 1, {2, 0, 0, 0}},
    {"r", 6, 3, 3, 1, {1, 0, 0, 0}},
    {"dt", 9, 2, 2, 0, {0}},
};
static const spdl_param fine_table[] = {
    {"K", 0, 8, 4, 2, {1, 2, 0, 0}},
    {"c", 8, 2, 1, 1, {2, 0, 0, 0}},
    {"r", 10, 3, 3, 1, {1, 0, 0, 0}},
    {"dt", 13, 4, 4, 0, {0}},
};
static const spdl_param *coarse_params(size_t *n) { return *n = 4, coarse_table; }
static const spdl_param *fine_params(size_t *n) { return *n = 4, fine_table; }
static const unsigned char steps[] = {0, 0, 0, 1};
static const spdl_model coarse = {.name = "m", .source_hash = "0123456789abcdef", .nparam = 11,
                                  .params = coarse_params, .learned_steps = steps};
static const spdl_model fine = {.name = "m", .source_hash = "0123456789abcdef", .nparam = 17,
                                .params = fine_params, .learned_steps = steps};

/* K layers (1, 2) and (3, 6); c (7, 8); r (9, 10, 11); dt (0.25, 0.75), summing to T = 1 */
static const double theta[11] = {1, 2, 3, 6, 7, 8, 9, 10, 11, 0.25, 0.75};

Test(levels, constant_prolongation_copies_each_layer_to_its_halves)
{
    double f[17];
    spdl_prolong(&coarse, &fine, theta, f, SPDL_PROLONG_CONSTANT, SPDL_PROLONG_VALUE);
    const double want[17] = {1, 2, 1, 2, 3, 6, 3, 6, 7, 8, 9, 10, 11, 0.125, 0.125, 0.375, 0.375};
    for (int i = 0; i < 17; i++)
        cr_expect_eq(f[i], want[i], "entry %d: %g, not %g", i, f[i], want[i]);
    cr_expect_eq(f[13] + f[14] + f[15] + f[16], 1.0, "the steps cover the interval exactly");
}

Test(levels, linear_prolongation_interpolates_between_midpoints)
{
    double f[17];
    spdl_prolong(&coarse, &fine, theta, f, SPDL_PROLONG_LINEAR, SPDL_PROLONG_VALUE);
    /* fine 0 keeps coarse 0; fine 1 = 3/4 c0 + 1/4 c1; fine 2 = 3/4 c1 + 1/4 c0; fine 3 keeps c1 */
    const double want[17] = {1, 2, 1.5, 3, 2.5, 5, 3, 6, 7, 8, 9, 10, 11,
                             0.125, 0.5 * (0.75 * 0.25 + 0.25 * 0.75), 0.5 * (0.75 * 0.75 + 0.25 * 0.25), 0.375};
    for (int i = 0; i < 17; i++)
        cr_expect_float_eq(f[i], want[i], 1e-15, "entry %d: %.17g, not %.17g", i, f[i], want[i]);
    cr_expect_float_eq(f[13] + f[14] + f[15] + f[16], 1.0, 1e-15, "the steps still sum to T");
}

Test(levels, second_moments_of_steps_are_quartered)
{
    double f[17];
    spdl_prolong(&coarse, &fine, theta, f, SPDL_PROLONG_CONSTANT, SPDL_PROLONG_SQUARE);
    cr_expect_eq(f[0], 1);
    cr_expect_eq(f[13], 0.0625);
    cr_expect_eq(f[16], 0.1875);
}

Test(levels, one_model_at_doubling_layers_passes)
{
    char err[256];
    const spdl_model *ok[] = {&coarse, &fine};
    cr_expect_eq(spdl_levels_check(ok, 2, err, sizeof err), SPDL_OK, "%s", err);
    cr_expect_eq(spdl_levels_check(ok + 1, 1, err, sizeof err), SPDL_OK, "one level is always fine");
}

static const spdl_param tripled_table[] = {
    {"K", 0, 12, 6, 2, {1, 2, 0, 0}},
    {"c", 12, 2, 1, 1, {2, 0, 0, 0}},
    {"r", 14, 3, 3, 1, {1, 0, 0, 0}},
    {"dt", 17, 6, 6, 0, {0}},
};
static const spdl_param *tripled_params(size_t *n) { return *n = 4, tripled_table; }

Test(levels, other_models_and_other_layer_ratios_are_refused)
{
    char err[256];
    spdl_model other = fine;
    other.name = "n";
    const spdl_model *named[] = {&coarse, &other};
    cr_expect_eq(spdl_levels_check(named, 2, err, sizeof err), SPDL_EMODEL);
    cr_expect(strstr(err, "not one model"), "%s", err);
    spdl_model tripled = fine;
    tripled.params = tripled_params;
    tripled.nparam = 23;
    const spdl_model *three[] = {&coarse, &tripled};
    cr_expect_eq(spdl_levels_check(three, 2, err, sizeof err), SPDL_EMODEL);
    cr_expect(strstr(err, "'K', 2 layers; 'K', 6 layers"), "%s", err);
    const spdl_model *backwards[] = {&fine, &coarse};
    cr_expect_eq(spdl_levels_check(backwards, 2, err, sizeof err), SPDL_EMODEL, "the finest comes last");
}

Test(levels, checkpoints_record_their_level_strictly)
{
    char dir[] = "/tmp/spdl-lv-XXXXXX", path[64], err[512];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    spdl_optim opt;
    cr_assert_eq(spdl_optim_init(&opt, SPDL_ADAM, 11, 0.01), 0);
    spdl_run_state run = {.epoch = 2, .rng = 7, .total_epochs = 3, .level = 1, .levels = 2};
    cr_assert_eq(spdl_weights_save(path, &coarse, theta, &opt, &run, err, sizeof err), 0, "%s", err);
    int level = -1, levels = -1;
    cr_expect_eq(spdl_weights_level(path, &level, &levels, err, sizeof err), 0, "%s", err);
    cr_expect(level == 1 && levels == 2, "level %d of %d", level, levels);
    double th[17];
    spdl_run_state back = {0};
    cr_expect_eq(spdl_weights_load(path, &coarse, th, &opt, &back, NULL, err, sizeof err), 0, "%s", err);
    cr_expect(back.level == 1 && back.levels == 2 && back.epoch == 2 && back.total_epochs == 3);
    /* the fine level's descriptor cannot read it, and says which level it holds */
    cr_expect_eq(spdl_weights_load(path, &fine, th, NULL, NULL, NULL, err, sizeof err), SPDL_EMODEL);
    cr_expect(strstr(err, "level 1 of the 2"), "%s", err);
    /* a one-level run writes neither key */
    spdl_run_state plain = {.epoch = 2, .rng = 7, .total_epochs = 3};
    cr_assert_eq(spdl_weights_save(path, &coarse, theta, &opt, &plain, err, sizeof err), 0, "%s", err);
    cr_expect_eq(spdl_weights_level(path, &level, &levels, err, sizeof err), 0, "%s", err);
    cr_expect(level == 0 && levels == 0);
    spdl_optim_free(&opt);
    unlink(path);
    rmdir(dir);
}

/* --grid-levels: an image model on R[2, 8, 8], 4x4 and 2x2, one kernel k and a bias */
static const spdl_param grid_table[] = {
    {"k", 0, 9, 1, 2, {3, 3, 0, 0}},
    {"b", 9, 2, 2, 1, {1, 0, 0, 0}},
};
static const spdl_param *grid_params(size_t *n) { return *n = 2, grid_table; }
static const spdl_param grid_more_table[] = {
    {"k", 0, 9, 1, 2, {3, 3, 0, 0}},
    {"b", 9, 2, 1, 1, {2, 0, 0, 0}},
};
static const spdl_param *grid_more_params(size_t *n) { return *n = 2, grid_more_table; }
#define GRID_LEVEL(side)                                                                                            \
    {.name = "g", .source_hash = "00000000000000aa", .nin = 2 * (side) * (side), .nout = 3, .nclass = 3,            \
     .nstate = 5 * (side) * (side), .ntarget = 1, .nparam = 11, .in_rank = 3, .in_shape = {2, side, side},         \
     .params = grid_params}
static const spdl_model grid8 = GRID_LEVEL(8), grid4 = GRID_LEVEL(4), grid2 = GRID_LEVEL(2);

Test(levels, grid_levels_share_their_parameters)
{
    char err[256], what[64];
    const spdl_model *ok[] = {&grid2, &grid4, &grid8};
    cr_expect_eq(spdl_levels_check(ok, 3, err, sizeof err), SPDL_OK, "%s", err);
    cr_expect_eq(spdl_level_grid(&grid2, &grid8), 4);
    cr_expect_eq(spdl_level_grid(&grid8, &grid8), 1);
    cr_expect_eq(spdl_level_grid(&coarse, &fine), 1, "levels in depth have one grid");
    spdl_level_describe(ok, 3, 0, what, sizeof what);
    cr_expect_str_eq(what, "images 1/4 the size (2x2)");
    spdl_level_describe(ok, 3, 2, what, sizeof what);
    cr_expect_str_eq(what, "images at full size (8x8)");
    const spdl_model *depth[] = {&coarse, &fine};
    spdl_level_describe(depth, 2, 0, what, sizeof what);
    cr_expect_str_eq(what, "every flow in 1/2 of its layers");
    /* the parameters go over unchanged */
    double th[11], f[11];
    for (int i = 0; i < 11; i++)
        th[i] = i + 0.5;
    spdl_prolong(&grid4, &grid8, th, f, SPDL_PROLONG_CONSTANT, SPDL_PROLONG_SQUARE);
    cr_expect_arr_eq(th, f, sizeof th);
    /* a skipped grid, other channels, a grid that is not square, other copies: refused */
    const spdl_model *skip[] = {&grid2, &grid8};
    cr_expect_eq(spdl_levels_check(skip, 2, err, sizeof err), SPDL_EMODEL);
    spdl_model chan = grid4, rect = grid4, copies = grid4;
    chan.in_shape[0] = 1;
    chan.nin = 16;
    rect.in_shape[2] = 8;
    rect.nin = 32;
    copies.params = grid_more_params;
    const spdl_model *bad_chan[] = {&chan, &grid8}, *bad_rect[] = {&rect, &grid8}, *bad_copies[] = {&copies, &grid8};
    cr_expect_eq(spdl_levels_check(bad_chan, 2, err, sizeof err), SPDL_EMODEL);
    cr_expect_eq(spdl_levels_check(bad_rect, 2, err, sizeof err), SPDL_EMODEL);
    cr_expect_eq(spdl_levels_check(bad_copies, 2, err, sizeof err), SPDL_EMODEL);
    cr_expect(strstr(err, "not one parameter at both grids ('b', 1 layers; 'b', 2 layers)"), "%s", err);
}

Test(levels, grid_data_are_restricted_by_2x2_means)
{
    /* two samples of two 8x8 channels: entry (c, i, j) of sample s is 1000 s + 100 c + 8 i + j */
    enum { N = 2, C = 2, S = 8 };
    double x[N * C * S * S], t[N] = {1, 2};
    for (int s = 0; s < N; s++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++)
                    x[((s * C + c) * S + i) * S + j] = 1000 * s + 100 * c + 8 * i + j;
    spdl_data d = {.n = N, .nin = C * S * S, .ntarget = 1, .x = x, .t = t, .nclass = 3};
    spdl_data r4, r2;
    cr_assert_eq(spdl_restrict_data(&grid4, &grid8, &d, &r4), SPDL_OK);
    cr_assert_eq(spdl_restrict_data(&grid2, &grid8, &d, &r2), SPDL_OK);
    cr_expect(r4.n == N && r4.nin == C * 16 && r2.nin == C * 4 && r4.nclass == 3);
    /* a 2x2 block at (2i, 2j) averages to 1000 s + 100 c + 16 i + 2 j + 4.5; a 4x4 block to ... + 32 i + 4 j + 13.5 */
    for (int s = 0; s < N; s++)
        for (int c = 0; c < C; c++) {
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    cr_expect_eq(r4.x[((s * C + c) * 4 + i) * 4 + j], 1000 * s + 100 * c + 16 * i + 2 * j + 4.5,
                                 "4x4: sample %d channel %d (%d, %d)", s, c, i, j);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    cr_expect_eq(r2.x[((s * C + c) * 2 + i) * 2 + j], 1000 * s + 100 * c + 32 * i + 4 * j + 13.5,
                                 "2x2: sample %d channel %d (%d, %d)", s, c, i, j);
        }
    cr_expect(r4.t != t && r4.t[0] == 1 && r4.t[1] == 2, "the labels are copied");
    spdl_data_free(&r4);
    spdl_data_free(&r2);
}
