/*
 * actions.h — the handlers of the action table (ui/keys.c), in ui/actions.c.
 */
#ifndef DT_UI_ACTIONS_H
#define DT_UI_ACTIONS_H

#include "keys.h"

#define UI_ACTION(n) int ui_act_##n(struct ui_app *app, const struct ui_args *a)

UI_ACTION(down);
UI_ACTION(up);
UI_ACTION(left);
UI_ACTION(right);
UI_ACTION(sib_next);
UI_ACTION(sib_prev);
UI_ACTION(top);
UI_ACTION(bottom);
UI_ACTION(page_down);
UI_ACTION(page_up);
UI_ACTION(focus_next);
UI_ACTION(focus_prev);
UI_ACTION(tok_prev);
UI_ACTION(tok_next);
UI_ACTION(node);
UI_ACTION(search);
UI_ACTION(search_next);
UI_ACTION(search_prev);
UI_ACTION(mark);
UI_ACTION(jump);
UI_ACTION(prompt);
UI_ACTION(reply);
UI_ACTION(extend);
UI_ACTION(extend_all);
UI_ACTION(fork);
UI_ACTION(fork_text);
UI_ACTION(fork_alt);
UI_ACTION(sample);
UI_ACTION(sample_here);
UI_ACTION(beam);
UI_ACTION(pause);
UI_ACTION(cancel);
UI_ACTION(prune);
UI_ACTION(finish);
UI_ACTION(algo);
UI_ACTION(backend);
UI_ACTION(fold);
UI_ACTION(fold_more);
UI_ACTION(fold_less);
UI_ACTION(fold_level);
UI_ACTION(color);
UI_ACTION(boundaries);
UI_ACTION(show_pruned);
UI_ACTION(explain);
UI_ACTION(help);
UI_ACTION(redraw);
UI_ACTION(set);
UI_ACTION(save);
UI_ACTION(open);
UI_ACTION(export);
UI_ACTION(load);
UI_ACTION(replay);
UI_ACTION(recover);
UI_ACTION(quit);
UI_ACTION(quit_force);
UI_ACTION(save_quit);
UI_ACTION(command);

#endif
