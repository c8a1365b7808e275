//! `serde` for the values that have a text form (ids, currencies, amounts), behind the
//! `serde` feature: written as their `Display`, read back through their `FromStr`, so
//! a stored value is validated on the way in like any other input.

/// Implements `Serialize` and `Deserialize` (with the `serde` feature) for types that
/// are `Display + FromStr`.
macro_rules! serde_as_text {
    ($($ty:ty),+ $(,)?) => {$(
        #[cfg(feature = "serde")]
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}
