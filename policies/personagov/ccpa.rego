# CCPA as amended by the CPRA (Cal. Civ. Code §1798.100 et seq.) for US-CA.
# Marketing segmentation is treated as cross-context behavioural advertising ("sharing").
package personagov.ccpa

import data.personagov.lib
import rego.v1

applies if lib.regime == "ccpa"

# §1798.120(a), §1798.135: the right to opt out of sale or sharing (flag or privacy request).
subject_exclusions contains lib.rule(
	"ccpa.opt_out_sale_share",
	"CCPA §1798.120(a), §1798.135",
	lib.any_true(["do_not_sell_share", "opt_out_requested"]),
) if {
	applies
	lib.marketing
}

# CCPA Regulations §7025: a Global Privacy Control signal is a valid opt-out of sale/sharing.
subject_exclusions contains lib.rule("ccpa.gpc_signal", "CCPA Regs 11 CCR §7025; §1798.135(e)", lib.is_true("gpc")) if {
	applies
	lib.marketing
}

# §1798.120(c): consumers under 16 must opt in (parental opt-in under 13) before sale/sharing.
subject_exclusions contains lib.rule(
	"ccpa.minor_no_opt_in",
	"CCPA §1798.120(c)",
	{"all": [lib.age_under(data.pgov.ccpa_opt_in_age), lib.no_consent]},
) if {
	applies
	lib.marketing
}

# §1798.121: a request to limit use of sensitive personal information. We null that
# customer's sensitive_pi columns rather than exclude the customer: the right limits the use
# of the sensitive data, not of the customer relationship. §1798.121(a) and Regs §7027(m)
# permit uses required by law, so the kyc_aml purpose is exempt.
nullings contains {
	"reason": "ccpa.limit_sensitive_pi",
	"article": "CCPA §1798.121; Regs 11 CCR §7027",
	"condition": lib.is_true("limit_sensitive_pi"),
	"classification": "sensitive_pi",
} if {
	applies
	not lib.legal_obligation
}
