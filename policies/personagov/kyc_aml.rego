# KYC / AML purpose: runs under legal obligation (GDPR Art. 6(1)(c); EU AMLR 2024/1624,
# AMLD Art. 40 record keeping). Marketing opt-outs do not apply (no regime module emits
# marketing exclusions for this purpose), screening data is allowed only here (see
# baseline), identifiers go to the reversible kyc domain.
package personagov.kyc_aml

import data.personagov.lib
import rego.v1

applies if lib.kyc

# The scoring ruleset is owned by policies/kyc/ (package personagov.kyc_ruleset); we pass
# it through opaque. No ruleset, no KYC refresh.
ruleset_defined if {
	rs := data.personagov.kyc_ruleset.ruleset
	is_object(rs)
}

deny contains "kyc.ruleset_undefined" if {
	applies
	not ruleset_defined
}

default ruleset := null

ruleset := data.personagov.kyc_ruleset.ruleset if applies

# GDPR Art. 6(1)(c): the lawful basis is recorded with every KYC decision.
obligations contains "lawful_basis:legal_obligation" if applies

# EDPB Guidelines 01/2025 on pseudonymisation: re-identification only by KYC operations,
# each one audited.
obligations contains "reidentification:kyc_operations_only_audited" if applies

# AMLR Art. 26(2): periodic review at most every 1 year (high risk) or 5 years (others).
obligations contains "kyc_review:max_1y_high_5y_other" if applies
