package personagov.access_test

import data.personagov.access
import data.personagov.fixtures_test as f
import rego.v1

authz(who, action, resource) := d if {
	d := access.authz with input as {"actor": who, "action": action, "resource": resource}
}

test_analyst_refreshes_own_jurisdiction if {
	count(access.refresh_deny) == 0 with input as f.marketing("EU-DE", f.analyst_eu)
}

test_analyst_cannot_refresh_other_jurisdiction if {
	"access.jurisdiction_not_assigned" in access.refresh_deny with input as f.marketing("UK", f.analyst_eu)
}

test_compliance_cannot_run_marketing if {
	"access.compliance_cannot_run_marketing" in access.refresh_deny with input as f.marketing("EU-DE", f.compliance)
	count(access.refresh_deny) == 0 with input as f.kyc("EU-DE", f.compliance)
}

test_data_engineer_runs_no_refresh if {
	"access.purpose_not_permitted_for_role" in access.refresh_deny with input as f.credit("EU-DE", f.actor("de", ["data_engineer"], "EU", ["EU-DE"]))
}

test_unknown_actor_denied if {
	"access.unknown_actor" in access.refresh_deny with input as f.marketing("EU-DE", null)
	"access.unknown_actor" in access.refresh_deny with input as f.marketing("EU-DE", f.actor("x", [], "EU", ["EU-DE"]))
}

test_unknown_jurisdiction_and_purpose_denied if {
	"jurisdiction.unknown" in access.refresh_deny with input as f.marketing("EU-XX", f.analyst_eu)
	"purpose.unknown" in access.refresh_deny with input as f.request("EU-DE", "astrology", f.analyst_eu)
}

# Compliance reads and verifies everything.
test_compliance_verifies_everything if {
	every j in f.all_jurisdictions {
		authz(f.compliance, "verify", {"jurisdiction": j}).allow
		authz(f.compliance, "approve_version", {"jurisdiction": j}).allow
	}
	authz(f.compliance, "read_audit", {}).allow
}

test_analyst_cannot_approve if {
	d := authz(f.analyst_eu, "approve_version", {"jurisdiction": "EU-DE"})
	not d.allow
	"access.role_not_permitted" in d.deny
}

# KYC operations re-identify kyc-domain tokens only.
test_kyc_ops_reidentify_kyc_domain_only if {
	authz(f.kyc_ops, "reidentify", {"domain": "kyc", "jurisdiction": "EU-DE"}).allow
	d := authz(f.kyc_ops, "reidentify", {"domain": "marketing", "jurisdiction": "EU-DE"})
	not d.allow
	"access.reidentify_domain_not_kyc" in d.deny
	not authz(f.kyc_ops, "reidentify", {}).allow
}

test_others_cannot_reidentify if {
	not authz(f.compliance, "reidentify", {"domain": "kyc"}).allow
	not authz(f.analyst_eu, "reidentify", {"domain": "kyc"}).allow
}

test_kyc_override_and_approval_roles if {
	authz(f.kyc_ops, "kyc_override", {"jurisdiction": "SG"}).allow
	authz(f.compliance, "kyc_approve", {"jurisdiction": "SG", "requested_by": "kyc-ops"}).allow
	not authz(f.analyst_sg, "kyc_override", {"jurisdiction": "SG"}).allow
	# Approving is the compliance officer's alone: operations request, compliance approves.
	"access.role_not_permitted" in authz(f.kyc_ops, "kyc_approve", {"jurisdiction": "SG", "requested_by": "someone"}).deny
}

test_kyc_approver_is_never_the_requester if {
	d := authz(f.compliance, "kyc_approve", {"jurisdiction": "SG", "requested_by": f.compliance.id})
	"kyc.four_eyes_same_person" in d.deny
}

test_unknown_action_denied if {
	"access.unknown_action" in authz(f.compliance, "drop_tables", {}).deny
}

test_action_across_a_border_needs_a_mechanism if {
	who := f.actor("kyc-us", ["kyc_operations"], "US", ["BR"])
	"transfer.no_adequacy_or_mechanism" in authz(who, "reidentify", {"domain": "kyc", "jurisdiction": "BR"}).deny
}

# KYC queues and customer views: KYC operations in their assigned jurisdictions, compliance
# everywhere; analysts and engineers never (pseudonymised KYC data is still personal data).
test_kyc_read_roles_and_jurisdictions if {
	authz(f.kyc_ops, "kyc_read", {"jurisdiction": "EU-DE", "purpose": "kyc_aml"}).allow
	every j in f.all_jurisdictions {
		authz(f.compliance, "kyc_read", {"jurisdiction": j, "purpose": "kyc_aml"}).allow
	}
	d := authz(f.analyst_eu, "kyc_read", {"jurisdiction": "EU-DE", "purpose": "kyc_aml"})
	"access.role_not_permitted" in d.deny
	not authz(f.engineer, "kyc_read", {"jurisdiction": "EU-DE"}).allow
	ops_uk := f.actor("kyc-uk", ["kyc_operations"], "UK", ["UK"])
	authz(ops_uk, "kyc_read", {"jurisdiction": "UK"}).allow
	"access.jurisdiction_not_assigned" in authz(ops_uk, "kyc_read", {"jurisdiction": "EU-DE"}).deny
}

test_kyc_deliver_roles if {
	authz(f.kyc_ops, "kyc_deliver", {"jurisdiction": "SG", "purpose": "kyc_aml"}).allow
	not authz(f.analyst_sg, "kyc_deliver", {"jurisdiction": "SG"}).allow
	not authz(f.engineer, "kyc_deliver", {"jurisdiction": "SG"}).allow
}
