# Who may do what where. Refreshes are decided in personagov.decision (which reads
# refresh_deny); single actions (re-identify, approve, override, verify) through `authz`.
# GDPR Art. 5(1)(f), 25(2), 32(4): access limited to those who need it.
package personagov.access

import data.personagov.lib
import data.personagov.transfers
import rego.v1

known_actor if {
	is_string(input.actor.id)
	count(input.actor.roles) > 0
}

has_role(role) if role in input.actor.roles

assigned(jurisdiction) if jurisdiction in input.actor.jurisdictions

# ---------------------------------------------------------------- refresh

refresh_deny contains "access.unknown_actor" if not known_actor

refresh_deny contains "jurisdiction.unknown" if not data.pgov.jurisdictions[input.jurisdiction]

refresh_deny contains "purpose.unknown" if not data.pgov.purposes[input.purpose]

# Regional teams see only their own jurisdictions.
refresh_deny contains "access.jurisdiction_not_assigned" if {
	known_actor
	not assigned(input.jurisdiction)
}

may_refresh if {
	some role in input.actor.roles
	input.purpose in data.pgov.refresh_purposes_by_role[role]
}

refresh_deny contains "access.purpose_not_permitted_for_role" if {
	known_actor
	not may_refresh
}

# Compliance officers audit; they do not run marketing refreshes (segregation of duties).
refresh_deny contains "access.compliance_cannot_run_marketing" if {
	has_role("compliance_officer")
	lib.marketing
}

# ---------------------------------------------------------------- single actions

action := input.action

known_action if data.pgov.actions_by_role[action]

may_act if {
	some role in input.actor.roles
	role in data.pgov.actions_by_role[action]
}

# Roles that act on every jurisdiction (compliance reads and verifies everything).
anywhere if {
	some role in input.actor.roles
	role in object.get(data.pgov.actions_anywhere_by_role, action, [])
}

authz_deny contains "access.unknown_actor" if not known_actor

authz_deny contains "access.unknown_action" if not known_action

authz_deny contains "access.role_not_permitted" if {
	known_actor
	known_action
	not may_act
}

authz_deny contains "access.jurisdiction_not_assigned" if {
	known_actor
	j := input.resource.jurisdiction
	not anywhere
	not assigned(j)
}

authz_deny contains "transfer.no_adequacy_or_mechanism" if {
	known_actor
	j := input.resource.jurisdiction
	not transfers.allowed(input.actor.home_region, j)
}

# EDPB 01/2025: marketing tokens are irreversible by design; only kyc-domain tokens can be
# re-identified, and only by KYC operations.
authz_deny contains "access.reidentify_domain_not_kyc" if {
	action == "reidentify"
	not input.resource.domain == "kyc"
}

# Four eyes on KYC overrides (EBA GL 2021/02 4.74, senior approval of higher-risk
# decisions): the approver is never the requester.
authz_deny contains "kyc.four_eyes_same_person" if {
	action == "kyc_approve"
	input.resource.requested_by == input.actor.id
}

authz := {"allow": count(authz_deny) == 0, "deny": sort(authz_deny)}
