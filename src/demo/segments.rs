//! The demo segment catalogue.

/// About a dozen realistic segments as `(name, rule text, description)`, in the rule text
/// syntax of the README. Segments referenced by others ("vip", "churned") come first.
pub fn demo_segments() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "vip",
            r#"tags contains "vip" or ltv > 1000"#,
            "VIP customers: tagged vip, or lifetime value above 1000",
        ),
        (
            "churned",
            r#"orders_count > 0 and did not "order_completed" in last 60 days and last "email_opened" more than 60 days ago"#,
            "Former buyers with no order and no email opened in 60 days",
        ),
        (
            "de_young_high_value_push",
            r#"country = "DE" and age between 25 and 40 and status = "subscribed" and ltv > 300 and push_enabled"#,
            "Subscribed German customers aged 25-40 with lifetime value above 300 and push on",
        ),
        (
            "example_domain_or_vip_tag",
            r#"email ends_with "@example.com" or tags contains "vip""#,
            "Internal example.com addresses or anyone tagged vip",
        ),
        (
            "reachable_outside_berlin",
            r#"status in ("subscribed", "unconfirmed") and city != "Berlin""#,
            "Reachable (subscribed or unconfirmed) customers outside Berlin",
        ),
        (
            "new_signups_30d",
            r#"signup_at within last 30 days"#,
            "Signed up in the last 30 days: welcome journey audience",
        ),
        (
            "frequent_big_buyers",
            r#"did "order_completed" where amount > 100 at least 3 times in last 30 days"#,
            "At least 3 orders above 100 in the last 30 days",
        ),
        (
            "app_dormant_14d",
            r#"did not "app_opened" in last 14 days"#,
            "Did not open the app in the last 14 days: push re-engagement",
        ),
        (
            "email_lapsed_60d",
            r#"last "email_opened" more than 60 days ago"#,
            "Last opened an email more than 60 days ago: win-back",
        ),
        (
            "high_spenders_90d",
            r#"sum of "order_completed".amount in last 90 days >= 500"#,
            "Spent 500 or more in the last 90 days",
        ),
        (
            "vip_not_churned",
            r#"in segment "vip" and not in segment "churned""#,
            "Active VIPs: in vip and not in churned",
        ),
        (
            "holdout_10pct",
            r#"random bucket 10%"#,
            "Stable 10% holdout group for campaign measurement",
        ),
        (
            "missing_phone",
            r#"not has phone"#,
            "No phone number on file: ask for it at checkout",
        ),
        (
            "newsletter_subscribers",
            r#"subscriptions.newsletter.email.status = "subscribed" and test_subscriber = false"#,
            "Real (non-test) newsletter email subscribers",
        ),
    ]
}
