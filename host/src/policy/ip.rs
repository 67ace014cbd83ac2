//! IP allow/deny lists by CIDR.

use std::net::IpAddr;

use ipnet::IpNet;

/// Deny wins over allow; an empty allow list allows everyone not denied.
#[derive(Debug, Default)]
pub struct IpPolicy {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Parses `10.0.0.0/8`, or a bare address as a single-host network.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not a CIDR (like `10.0.0.0/8`) or an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        parse_cidr(s).expect("cidr")
    }

    #[test]
    fn deny_wins_and_empty_allow_allows() {
        let p = IpPolicy {
            allow: vec![],
            deny: vec![net("10.0.0.0/8")],
        };
        assert!(!p.permits("10.1.2.3".parse().expect("ip")));
        assert!(p.permits("192.168.1.1".parse().expect("ip")));
        let p = IpPolicy {
            allow: vec![net("127.0.0.1")],
            deny: vec![],
        };
        assert!(p.permits("127.0.0.1".parse().expect("ip")));
        assert!(p.permits("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!p.permits("127.0.0.2".parse().expect("ip")));
    }
}
