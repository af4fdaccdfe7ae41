# US-NY and any US jurisdiction without a comprehensive privacy statute: a documented
# baseline modelled on GLBA's opt-out for financial institutions and COPPA for children.
package personagov.us_baseline

import data.personagov.lib
import rego.v1

applies if lib.regime == "us_baseline"

# GLBA 15 U.S.C. §6802(b), Reg. P 12 CFR §1016.10: honour an opt-out. We read every opt-out
# signal we hold (privacy request, do-not-sell/share, GPC, marketing objection) as one.
subject_exclusions contains lib.rule(
	"us_baseline.opt_out",
	"GLBA 15 U.S.C. §6802(b); 12 CFR §1016.10",
	lib.any_true(["opt_out_requested", "do_not_sell_share", "gpc", "objection_direct_marketing"]),
) if {
	applies
	lib.marketing
}

# COPPA 15 U.S.C. §6502: no marketing profiles of children under 13.
subject_exclusions contains lib.rule("us_baseline.child", "COPPA 15 U.S.C. §6502", lib.age_under(lib.consent_age)) if {
	applies
	lib.marketing
}
