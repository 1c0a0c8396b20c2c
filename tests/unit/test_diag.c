/* test_diag.c - diagnostic printing: location, caret underline over the
 * whole span, notes, long lines, UTF-8, the error cap. */
#include "unit.h"

static Span at(int file, unsigned off, unsigned len) { return (Span){file, off, len}; }

Test(diag, location_line_and_caret)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "first line\n  second K * x;\nthird");
    Diag *g = diag_error(&u.d, at(f, 20, 1), "cannot multiply %s by %s", "R[8,8]", "R[4]");
    diag_note(&u.d, g, NO_SPAN, "a note without a place");
    diag_note(&u.d, g, at(f, 0, 5), "a note with one");
    diag_warning(&u.d, at(f, 13, 6), "a warning");
    cr_assert_eq(u.d.errors, 1);
    cr_assert_eq(u.d.warnings, 1);
    cr_assert_str_eq(unit_diags(&u), "t.spn:2:10: error: cannot multiply R[8,8] by R[4]\n"
                                     "    2 |   second K * x;\n"
                                     "      |          ^\n"
                                     "t.spn:2:10: note: a note without a place\n"
                                     "t.spn:1:1: note: a note with one\n"
                                     "    1 | first line\n"
                                     "      | ^~~~~\n"
                                     "t.spn:2:3: warning: a warning\n"
                                     "    2 |   second K * x;\n"
                                     "      |   ^~~~~~\n");
    unit_free(&u);
}

Test(diag, no_location)
{
    Unit u;
    unit_init(&u);
    diag_error(&u.d, NO_SPAN, "no model named '%s'", "x");
    cr_assert_str_eq(unit_diags(&u), "spdlc: error: no model named 'x'\n");
    unit_free(&u);
}

Test(diag, end_of_file_and_empty_file)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "abc\n");
    diag_error(&u.d, at(f, 4, 0), "at the end");
    int e = diag_add_file(&u.d, "e.spn", "", 0, NULL);
    diag_error(&u.d, at(e, 0, 0), "empty");
    cr_assert_str_eq(unit_diags(&u), "t.spn:2:1: error: at the end\n"
                                     "    2 | \n"
                                     "      | ^\n"
                                     "e.spn:1:1: error: empty\n"
                                     "    1 | \n"
                                     "      | ^\n");
    unit_free(&u);
}

Test(diag, tabs_keep_the_caret_aligned)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "\tx = \ty;");
    diag_error(&u.d, at(f, 6, 1), "here");
    cr_assert_str_eq(unit_diags(&u), "t.spn:1:7: error: here\n"
                                     "    1 | \tx = \ty;\n"
                                     "      | \t    \t^\n");
    unit_free(&u);
}

Test(diag, utf8_and_invalid_bytes_take_one_column_each)
{
    Unit u;
    unit_init(&u);
    /* "é" is two bytes, one column; 0xff prints as '?'; ESC as ' ' */
    int f = unit_text(&u, "// caf\xc3\xa9 \xff \x1b x");
    diag_error(&u.d, at(f, 13, 1), "here");
    cr_assert_str_eq(unit_diags(&u), "t.spn:1:14: error: here\n"
                                     "    1 | // caf\xc3\xa9 ?   x\n"
                                     "      |             ^\n");
    unit_free(&u);
}

Test(diag, long_lines_print_a_window)
{
    Unit u;
    unit_init(&u);
    char *line = malloc(100001);
    memset(line, 'a', 100000);
    line[100000] = '\0';
    line[50000] = 'X';
    int f = unit_text(&u, line);
    diag_error(&u.d, at(f, 50000, 1), "in the middle");
    const char *out = unit_diags(&u);
    const char *head = "t.spn:1:50001: error: in the middle\n    1 | ...aaa";
    cr_assert(strncmp(out, head, strlen(head)) == 0, "%.200s", out);
    cr_assert_lt(strlen(out), 450, "a window of the line, not 100,000 bytes");
    /* the caret sits under the X */
    const char *src = strchr(out, '\n') + 1, *car = strchr(src, '\n') + 1;
    int xcol = (int)(strchr(src, 'X') - src), ccol = (int)(strchr(car, '^') - car);
    cr_assert_eq(xcol, ccol);
    free(line);
    unit_free(&u);
}

Test(diag, the_error_cap)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "x");
    for (int i = 0; i < 25; i++) {
        Diag *g = diag_error(&u.d, at(f, 0, 1), "error %d", i);
        diag_note(&u.d, g, NO_SPAN, "note %d", i);
        cr_assert_eq(diag_full(&u.d), i >= 19, "after %d errors", i + 1);
    }
    cr_assert_eq(u.d.errors, 25);
    const char *out = unit_diags(&u);
    cr_assert(strstr(out, "error: error 19\n"));
    cr_assert(strstr(out, "note: note 19\n"));
    cr_assert_null(strstr(out, "error 20"));
    cr_assert_null(strstr(out, "note 20"));
    cr_assert(strstr(out, "spdlc: note: 5 more errors not shown; checking stopped early\n"), "%s", out);
    unit_free(&u);
}

Test(diag, cap_without_dropped_errors)
{
    Unit u;
    unit_init(&u);
    for (int i = 0; i < 20; i++)
        diag_error(&u.d, NO_SPAN, "e");
    cr_assert(!strstr(unit_diags(&u), "spdlc: note:"), "nobody stopped early: no note");
    unit_free(&u);
    unit_init(&u);
    for (int i = 0; i < 20; i++)
        diag_error(&u.d, NO_SPAN, "e");
    cr_assert(diag_full(&u.d));
    cr_assert(strstr(unit_diags(&u), "spdlc: note: checking stopped after 20 errors\n"));
    unit_free(&u);
}

Test(diag, line_col_and_span_helpers)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "ab\ncd\n\nef");
    int line, col;
    span_line_col(&u.d, at(f, 4, 1), &line, &col);
    cr_assert(line == 2 && col == 2);
    span_line_col(&u.d, at(f, 7, 1), &line, &col);
    cr_assert(line == 4 && col == 1);
    span_line_col(&u.d, at(f, 999, 1), &line, &col);
    cr_assert(line == 4 && col == 3, "offsets past the end clamp to the end");
    span_line_col(&u.d, NO_SPAN, &line, &col);
    cr_assert(line == 0 && col == 0);
    Span j = span_join(at(f, 1, 2), at(f, 6, 3));
    cr_assert(j.off == 1 && j.len == 8);
    cr_assert_str_eq(span_text(&u.d, at(f, 3, 2)), "cd");
    cr_assert_str_eq(span_text(&u.d, at(f, 7, 100)), "ef");
    cr_assert_str_eq(span_text(&u.d, NO_SPAN), "");
    unit_free(&u);
}
