//! Amounts and dates as people read them: `25,00 €` in French, `€25.00` in English,
//! dates in the practitioner's time zone.

use crate::money::{Currency, Money};
use crate::payment::model::Lang;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

const NARROW_NBSP: char = '\u{202f}';
const NBSP: char = '\u{a0}';

fn symbol(c: Currency) -> Option<&'static str> {
    match c {
        Currency::Eur => Some("€"),
        Currency::Usd => Some("$"),
        Currency::Gbp => Some("£"),
        Currency::Jpy => Some("¥"),
        _ => None,
    }
}

/// What amounts in `c` are written with: its sign (`€`), or its code when it has
/// none we use (`CHF`).
pub fn unit(c: Currency) -> &'static str {
    symbol(c).unwrap_or(c.code())
}

/// Groups the integer part by thousands with `sep`.
fn group(int: &str, sep: char) -> String {
    let digits: Vec<char> = int.chars().collect();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(*d);
    }
    out
}

/// `25,00 €` (fr) or `€25.00` (en); negative amounts keep their sign in front.
pub fn money(m: &Money, lang: Lang) -> String {
    let text = m.amount().abs().to_string();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let sign = if m.is_negative() { "−" } else { "" };
    let cur = m.currency();
    match lang {
        Lang::Fr => {
            let mut n = group(int, NARROW_NBSP);
            if let Some(f) = frac {
                n.push(',');
                n.push_str(f);
            }
            let unit = symbol(cur).unwrap_or(cur.code());
            format!("{sign}{n}{NBSP}{unit}")
        }
        Lang::En => {
            let mut n = group(int, ',');
            if let Some(f) = frac {
                n.push('.');
                n.push_str(f);
            }
            match symbol(cur) {
                Some(s) => format!("{sign}{s}{n}"),
                None => format!("{sign}{n}{NBSP}{}", cur.code()),
            }
        }
    }
}

/// The amount as typed in a form field of that language (`18,00` / `18.00`).
pub fn input(m: &Money, lang: Lang) -> String {
    let text = m.amount().to_string();
    match lang {
        Lang::Fr => text.replace('.', ","),
        Lang::En => text,
    }
}

const DAYS_FR: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];
const DAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn day_month(at: &DateTime<Tz>, lang: Lang) -> (&'static str, &'static str) {
    let d = usize::try_from(at.weekday().num_days_from_monday()).unwrap_or(0);
    let m = usize::try_from(at.month0()).unwrap_or(0);
    match lang {
        Lang::Fr => (DAYS_FR[d % 7], MONTHS_FR[m % 12]),
        Lang::En => (DAYS_EN[d % 7], MONTHS_EN[m % 12]),
    }
}

/// `mardi 3 novembre 2026 à 14:30` / `Tuesday 3 November 2026, 14:30`.
pub fn datetime_long(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = at.with_timezone(&tz);
    let (day, month) = day_month(&local, lang);
    let (h, min) = (local.hour(), local.minute());
    match lang {
        Lang::Fr => format!(
            "{day} {} {month} {} à {h:02}:{min:02}",
            local.day(),
            local.year()
        ),
        Lang::En => format!(
            "{day} {} {month} {}, {h:02}:{min:02}",
            local.day(),
            local.year()
        ),
    }
}

/// [`datetime_long`] with the time zone it is in: `mardi 3 novembre 2026 à 14:30
/// (Europe/Paris)`. What a patient in another time zone needs.
pub fn datetime_zoned(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    format!("{} ({})", datetime_long(at, tz, lang), tz.name())
}

/// `03/11/2026 14:30` / `2026-11-03 14:30`: for tables.
pub fn datetime_short(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = at.with_timezone(&tz);
    match lang {
        Lang::Fr => local.format("%d/%m/%Y %H:%M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// `27/11/2026` / `27 November 2026`: a day, as receipts and the patient's page say it.
pub fn date(at: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let local = at.with_timezone(&tz);
    match lang {
        Lang::Fr => local.format("%d/%m/%Y").to_string(),
        Lang::En => {
            let (_, month) = day_month(&local, lang);
            format!("{} {month} {}", local.day(), local.year())
        }
    }
}

/// The value of an `<input type="datetime-local">` in the time zone.
pub fn datetime_input(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::Eur).unwrap()
    }

    #[test]
    fn amounts_read_as_each_language_writes_them() {
        let table = [
            ("25.00", Lang::Fr, "25,00\u{a0}€"),
            ("25.00", Lang::En, "€25.00"),
            ("0.60", Lang::Fr, "0,60\u{a0}€"),
            ("1234567.5", Lang::Fr, "1\u{202f}234\u{202f}567,50\u{a0}€"),
            ("1234567.5", Lang::En, "€1,234,567.50"),
        ];
        for (amount, lang, expected) in table {
            assert_eq!(money(&eur(amount), lang), expected, "{amount} {lang:?}");
        }
        let chf = Money::from_minor(2500, Currency::Chf);
        assert_eq!(money(&chf, Lang::En), "25.00\u{a0}CHF");
        let negative = Money::from_minor(-50, Currency::Eur);
        assert_eq!(money(&negative, Lang::Fr), "−0,50\u{a0}€");
        assert_eq!(
            money(&Money::from_minor(5000, Currency::Jpy), Lang::En),
            "¥5,000"
        );
    }

    #[test]
    fn dates_are_shown_in_the_practitioners_time_zone() {
        let at = Utc.with_ymd_and_hms(2026, 11, 3, 13, 30, 0).unwrap();
        assert_eq!(
            datetime_long(at, chrono_tz::Europe::Paris, Lang::Fr),
            "mardi 3 novembre 2026 à 14:30"
        );
        assert_eq!(
            datetime_long(at, chrono_tz::America::New_York, Lang::En),
            "Tuesday 3 November 2026, 08:30"
        );
        assert_eq!(
            datetime_short(at, chrono_tz::Europe::Paris, Lang::Fr),
            "03/11/2026 14:30"
        );
        assert_eq!(date(at, chrono_tz::Europe::Paris, Lang::Fr), "03/11/2026");
        assert_eq!(
            date(at, chrono_tz::Europe::Paris, Lang::En),
            "3 November 2026"
        );
        assert_eq!(
            datetime_input(at, chrono_tz::Europe::Paris),
            "2026-11-03T14:30"
        );
    }

    #[test]
    fn form_inputs_use_the_languages_decimal_mark() {
        assert_eq!(input(&eur("18"), Lang::Fr), "18,00");
        assert_eq!(input(&eur("18"), Lang::En), "18.00");
    }
}
