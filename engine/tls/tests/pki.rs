//! `pki::init` / `issue` / `revoke`: what they refuse, and the files they leave.

use std::os::unix::fs::PermissionsExt;

use alicia_tls::pki;

#[test]
fn init_writes_the_pki_with_private_keys_0600_and_refuses_to_replace_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("dev");
    let written = pki::init(&d, &[], false).unwrap();
    assert_eq!(written.len(), 5);
    for name in ["ca.crt", "ca.key", "server.crt", "server.key", "crl.pem"] {
        let mode = std::fs::metadata(d.join(name)).unwrap().permissions().mode() & 0o777;
        let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode, want, "{name}");
    }
    let ca_before = std::fs::read(d.join("ca.crt")).unwrap();
    let err = pki::init(&d, &[], false).unwrap_err();
    assert_eq!(err.error_type(), "ca_exists");
    assert!(err.to_string().contains("ca.crt") && err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read(d.join("ca.crt")).unwrap(), ca_before);
    pki::init(&d, &["broker.home.arpa".into(), "192.168.1.10".into()], true).unwrap();
    assert_ne!(std::fs::read(d.join("ca.crt")).unwrap(), ca_before);
    assert_eq!(pki::init(&d, &["not a host".into()], true).unwrap_err().error_type(), "bad_host");
}

#[test]
fn client_names_that_cannot_be_usernames_or_file_names_are_refused() {
    for bad in ["", "a/b", "..", ".hidden", "a+b", "a#", "a\\b", "ca", "server", "line\nbreak", &"x".repeat(65)] {
        let err = pki::validate_client_name(bad).unwrap_err();
        assert_eq!(err.error_type(), "bad_name", "{bad:?}");
    }
    for good in ["kitchen-satellite", "living room", "esp32_01", "dev@home", &"x".repeat(64)] {
        pki::validate_client_name(good).unwrap();
    }
}

#[test]
fn issue_needs_a_ca_and_does_not_replace_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = pki::issue(d, "device", 30).unwrap_err();
    assert_eq!(err.error_type(), "missing_file");
    assert!(err.to_string().contains("alicia certs init"), "{err}");
    pki::init(d, &[], false).unwrap();
    let issued = pki::issue(d, "device", 30).unwrap();
    assert_eq!(std::fs::metadata(&issued.key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!issued.serial.is_empty());
    assert_eq!(pki::issue(d, "device", 30).unwrap_err().error_type(), "cert_exists");
}

#[test]
fn revoke_refuses_a_certificate_from_another_ca_and_counts_crl_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki::init(d, &[], false).unwrap();
    pki::issue(d, "one", 30).unwrap();
    pki::issue(d, "two", 30).unwrap();
    assert_eq!(pki::revoke(d, "one").unwrap().crl_number, 2);
    assert_eq!(pki::revoke(d, "two").unwrap().crl_number, 3);
    assert_eq!(pki::revoke(d, "three").unwrap_err().error_type(), "missing_file");

    let other = tempfile::tempdir().unwrap();
    pki::init(other.path(), &[], false).unwrap();
    pki::issue(other.path(), "stranger", 30).unwrap();
    std::fs::copy(other.path().join("stranger.crt"), d.join("stranger.crt")).unwrap();
    assert_eq!(pki::revoke(d, "stranger").unwrap_err().error_type(), "foreign_certificate");
}
