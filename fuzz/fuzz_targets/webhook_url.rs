//! Webhook URLs chosen by workspace admins: refused or accepted without panic, and an accepted
//! one is https to a host that is not an IP address in a special-purpose range.
//!
//! `public_ip` is the product's own table, so checking an accepted address against it only shows
//! that `webhook_url` consults it for every form of address the URL parser reads (decimal, hex,
//! octal and short IPv4 forms, IPv6 with an embedded IPv4). The standard library's `is_global`
//! (nightly, `feature(ip)`) is an independent second opinion: it is looser than the product's
//! table (it calls a few IETF blocks, AS112 and 6to4 global), so anything the product accepts must
//! be global by its account too.
//!
//! Each input is tried as the whole URL and as what follows `https://`: from whole strings alone
//! (with a dictionary) the fuzzer put an IP-address host in front of `public_ip` in one input
//! out of about 2,600.
#![no_main]
#![feature(ip)]

use libfuzzer_sys::fuzz_target;
use llmtrack_shared::domain::alert::{public_ip, webhook_url};

fuzz_target!(|s: &str| {
    check(s);
    check(&format!("https://{s}"));
});

fn check(s: &str) {
    if let Ok(u) = webhook_url(s, false) {
        assert_eq!(u.scheme(), "https");
        match u.host() {
            Some(url::Host::Ipv4(ip)) => {
                assert!(public_ip(ip.into()));
                assert!(ip.is_global(), "accepted {ip}, which is not global");
            }
            Some(url::Host::Ipv6(ip)) => {
                assert!(public_ip(ip.into()));
                assert!(ip.is_global(), "accepted {ip}, which is not global");
                assert!(ip.to_ipv4().is_none(), "accepted {ip}, an IPv4 address in IPv6 form");
            }
            Some(url::Host::Domain(_)) => {}
            None => panic!("accepted a URL without a host"),
        }
    }
}
