//! The access classes (`read`, `write`, `admin`) and a set of them (a
//! client's `access`).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessClass {
    Read,
    Write,
    Admin,
}

impl AccessClass {
    pub const ALL: [AccessClass; 3] = [AccessClass::Read, AccessClass::Write, AccessClass::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of classes (a client's `access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessSet(u8);

impl AccessSet {
    pub const ALL: AccessSet = AccessSet(0b111);

    pub fn of(classes: impl IntoIterator<Item = AccessClass>) -> Self {
        AccessSet(classes.into_iter().fold(0, |acc, c| acc | c.bit()))
    }

    pub fn allows(self, c: AccessClass) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn classes(self) -> impl Iterator<Item = AccessClass> {
        AccessClass::ALL
            .into_iter()
            .filter(move |c| self.allows(*c))
    }
}
