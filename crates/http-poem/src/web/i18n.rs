//! French and English. The language comes from `?lang=` (which sticks in a cookie),
//! else the cookie, else `Accept-Language`, else French. Every text exists in both
//! languages: a missing one is a compile error.

use billing_core::Lang;
use poem::Request;
use poem::web::cookie::{Cookie, CookieJar, SameSite};

pub const LANG_COOKIE: &str = "consultpay_lang";

fn parse(s: &str) -> Option<Lang> {
    let primary = s.trim().split(['-', '_', ';']).next()?.to_ascii_lowercase();
    match primary.as_str() {
        "fr" => Some(Lang::Fr),
        "en" => Some(Lang::En),
        _ => None,
    }
}

/// The request's language; a `?lang=` choice is remembered in a cookie.
pub fn detect(req: &Request, jar: &CookieJar) -> Lang {
    let chosen = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| parse(v))
    });
    if let Some(lang) = chosen {
        let mut cookie = Cookie::new_with_str(LANG_COOKIE, lang.code());
        cookie.set_path("/");
        cookie.set_same_site(SameSite::Lax);
        cookie.set_max_age(std::time::Duration::from_secs(365 * 24 * 3600));
        jar.add(cookie);
        return lang;
    }
    if let Some(lang) = jar.get(LANG_COOKIE).and_then(|c| parse(c.value_str())) {
        return lang;
    }
    req.headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .and_then(preferred)
        .unwrap_or(Lang::Fr)
}

/// The language of an `Accept-Language` header (French when it names neither), for
/// the API.
pub fn from_accept_language(header: Option<&str>) -> Lang {
    header.and_then(preferred).unwrap_or(Lang::Fr)
}

/// The known language an `Accept-Language` header prefers most (highest `q`, the
/// first one on a tie); `q=0` means "not this one".
fn preferred(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, u16)> = None;
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let Some(lang) = parts.next().and_then(parse) else {
            continue;
        };
        let q = match parts.find_map(|p| p.trim().strip_prefix("q=")) {
            Some(q) => match quality(q) {
                Some(q) => q,
                None => continue,
            },
            None => 1000,
        };
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((lang, q));
        }
    }
    best.map(|(lang, _)| lang)
}

/// A `q` value (0 to 1, at most three decimals) in thousandths.
fn quality(q: &str) -> Option<u16> {
    let (whole, fraction) = q.trim().split_once('.').unwrap_or((q.trim(), ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

/// A payment history event, in words (an unknown one as recorded).
pub fn history_event(code: &str, lang: Lang) -> &str {
    let (fr, en) = match code {
        "checkout_started" => ("Paiement commencé", "Checkout started"),
        "hold_placed" => ("Empreinte posée", "Hold placed"),
        "authorization_failed" => ("Autorisation refusée", "Authorisation declined"),
        "capture_requested" => ("Débit demandé", "Capture requested"),
        "captured" => ("Acte validé, débité", "Act validated, captured"),
        "release_requested" => ("Libération demandée", "Release requested"),
        "released" => ("Empreinte libérée", "Hold released"),
        "expired" => ("Empreinte expirée", "Hold expired"),
        "refund_requested" => ("Remboursement demandé", "Refund requested"),
        "partially_refunded" => ("Remboursement partiel", "Partially refunded"),
        "refunded" => ("Remboursé", "Refunded"),
        "fee_reported" => ("Frais Stripe connus", "Stripe fee known"),
        "card_saved" => ("Carte enregistrée", "Card saved"),
        "hold_requested" => ("Empreinte demandée", "Hold requested"),
        "renewal_failed" => (
            "Renouvellement de l'empreinte refusé",
            "Hold renewal declined",
        ),
        "attempt_ended" => ("Tentative de paiement close", "Payment attempt closed"),
        "reopened" => (
            "Nouveau paiement après expiration",
            "Paying again after expiry",
        ),
        "refund_updated" => ("Remboursement confirmé", "Refund confirmed"),
        "refund_failed" | "all_refunds_failed" => (
            "Remboursement échoué, montant rendu au remboursable",
            "Refund failed, amount refundable again",
        ),
        "dispute_opened" => ("Contestation", "Dispute"),
        "dispute_won" | "dispute_won_after_refund" | "dispute_won_after_full_refund" => {
            ("Contestation gagnée", "Dispute won")
        }
        "dispute_lost" => ("Contestation perdue", "Dispute lost"),
        "needs_attention" => ("À vérifier dans Stripe", "To check in Stripe"),
        other => return other,
    };
    match lang {
        Lang::Fr => fr,
        Lang::En => en,
    }
}

/// Who made a history event, in words: "you", staff, the patient, Stripe, ConsultPay.
pub fn history_actor(
    actor: &billing_core::audit::AuditActor,
    viewer: Option<billing_core::ids::UserId>,
    lang: Lang,
) -> &'static str {
    use billing_core::audit::AuditActor as A;
    let (fr, en) = match actor {
        A::User(id) if Some(*id) == viewer => ("Vous", "You"),
        A::User(_) => ("Cabinet", "Practice staff"),
        A::Patient => ("Patient", "Patient"),
        A::Stripe(_) => ("Stripe", "Stripe"),
        A::System => ("ConsultPay", "ConsultPay"),
    };
    match lang {
        Lang::Fr => fr,
        Lang::En => en,
    }
}

/// Every text of the pages.
#[derive(Debug)]
pub struct Texts {
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub sandbox_banner: &'static str,
    pub skip_to_content: &'static str,
    // Patient pay page.
    pub pay_title: &'static str,
    pub pay_with: &'static str,
    pub pay_amount_label: &'static str,
    pub pay_explain_hold: &'static str,
    pub pay_explain_capture: &'static str,
    pub pay_now: &'static str,
    pub pay_secure: &'static str,
    pub pay_not_needed: &'static str,
    pub pay_authorized: &'static str,
    pub enter_waiting_room: &'static str,
    pub pay_cancelled: &'static str,
    pub pay_declined: &'static str,
    pub pay_try_another: &'static str,
    pub pay_retry: &'static str,
    pub pay_released: &'static str,
    pub pay_expired: &'static str,
    pub pay_refunded: &'static str,
    pub pay_captured: &'static str,
    pub pay_unavailable: &'static str,
    pub pay_processing: &'static str,
    pub pay_hold_later: &'static str,
    pub pay_save_consent: &'static str,
    pub pay_hold_consent: &'static str,
    pub pay_save_card: &'static str,
    pub pay_card_saved: &'static str,
    pub pay_card_saved_then: &'static str,
    pub pay_authentication_required: &'static str,
    pub pay_expired_again: &'static str,
    pub pay_disputed: &'static str,
    // Payment page (C14, C15).
    pub hold_scheduled: &'static str,
    pub card_refused: &'static str,
    pub renewal_refused: &'static str,
    pub attention_title: &'static str,
    pub refunds_title: &'static str,
    pub refund_pending: &'static str,
    pub refund_failed: &'static str,
    pub dispute_title: &'static str,
    pub dispute_reason: &'static str,
    pub dispute_evidence_due: &'static str,
    pub dispute_withdrawn: &'static str,
    pub dispute_fee: &'static str,
    pub dispute_open_in_stripe: &'static str,
    pub attention_panel_title: &'static str,
    pub prefs_statement: &'static str,
    pub prefs_payment_label: &'static str,
    pub prefs_payment_label_help: &'static str,
    pub prefs_descriptor_suffix: &'static str,
    pub prefs_descriptor_suffix_help: &'static str,
    pub waiting_room_title: &'static str,
    pub waiting_room_text: &'static str,
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    // Sign-in.
    pub login_title: &'static str,
    pub login_token: &'static str,
    pub login_token_help: &'static str,
    pub login_submit: &'static str,
    pub login_failed: &'static str,
    pub logout: &'static str,
    // Navigation.
    pub nav_overview: &'static str,
    pub nav_schedule: &'static str,
    pub nav_preferences: &'static str,
    pub nav_services: &'static str,
    pub role_practitioner: &'static str,
    pub role_secretary: &'static str,
    // Stripe panel.
    pub stripe_title: &'static str,
    pub stripe_status_unlinked: &'static str,
    pub stripe_status_pending: &'static str,
    pub stripe_status_linked: &'static str,
    pub stripe_status_revoked: &'static str,
    pub stripe_account: &'static str,
    pub stripe_charges_ok: &'static str,
    pub stripe_charges_blocked: &'static str,
    pub stripe_link: &'static str,
    pub stripe_onboard: &'static str,
    pub stripe_verify: &'static str,
    pub stripe_unlink: &'static str,
    pub stripe_relink: &'static str,
    pub stripe_unlink_title: &'static str,
    pub stripe_unlink_explain: &'static str,
    pub stripe_unlink_confirm: &'static str,
    pub stripe_unlink_force: &'static str,
    pub stripe_unlink_account_links: &'static str,
    pub cancel: &'static str,
    pub stripe_payouts: &'static str,
    pub stripe_payouts_first: &'static str,
    pub stripe_dashboard: &'static str,
    pub stripe_fees_note: &'static str,
    // Flash messages.
    pub flash_linked: &'static str,
    pub flash_denied: &'static str,
    pub oauth_returning: &'static str,
    pub flash_onboarding_back: &'static str,
    pub flash_onboarding_expired: &'static str,
    pub oauth_sign_in_first: &'static str,
    pub flash_verified: &'static str,
    pub flash_unlinked: &'static str,
    pub flash_saved: &'static str,
    pub flash_validated: &'static str,
    pub flash_released: &'static str,
    pub flash_refunded: &'static str,
    pub flash_csrf: &'static str,
    // Preferences.
    pub prefs_title: &'static str,
    pub prefs_default_amount: &'static str,
    pub prefs_max_amount: &'static str,
    pub prefs_max_help: &'static str,
    pub prefs_currency: &'static str,
    pub prefs_fee_schedule: &'static str,
    pub prefs_custom: &'static str,
    pub prefs_percent: &'static str,
    pub prefs_fixed: &'static str,
    pub prefs_preview: &'static str,
    pub fee: &'static str,
    pub net: &'static str,
    pub save: &'static str,
    pub preset_default: &'static str,
    pub preset_standard: &'static str,
    pub preset_premium: &'static str,
    pub preset_uk: &'static str,
    pub preset_international: &'static str,
    // Services.
    pub services_title: &'static str,
    pub services_empty: &'static str,
    pub service_name: &'static str,
    pub service_amount: &'static str,
    pub service_active: &'static str,
    pub service_add: &'static str,
    pub service_update: &'static str,
    pub service_deactivate: &'static str,
    pub service_reactivate: &'static str,
    pub service_inactive: &'static str,
    // Scheduling.
    pub schedule_title: &'static str,
    pub schedule_practitioner: &'static str,
    pub schedule_patient: &'static str,
    pub schedule_email: &'static str,
    pub schedule_starts_at: &'static str,
    pub schedule_mode: &'static str,
    pub schedule_mode_none: &'static str,
    pub schedule_mode_none_help: &'static str,
    pub schedule_mode_online: &'static str,
    pub schedule_mode_online_help: &'static str,
    pub schedule_service: &'static str,
    pub schedule_no_service: &'static str,
    pub schedule_amount: &'static str,
    pub schedule_amount_help: &'static str,
    pub schedule_submit: &'static str,
    pub schedule_done: &'static str,
    pub schedule_link: &'static str,
    pub schedule_link_help: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub schedule_another: &'static str,
    pub schedule_needs_stripe: &'static str,
    // Payments table.
    pub payments_title: &'static str,
    pub col_date: &'static str,
    pub col_patient: &'static str,
    pub col_held: &'static str,
    pub col_captured: &'static str,
    pub col_refunded: &'static str,
    pub col_fee: &'static str,
    pub col_net: &'static str,
    pub col_status: &'static str,
    pub totals: &'static str,
    pub filter_status: &'static str,
    pub filter_all: &'static str,
    pub filter_from: &'static str,
    pub filter_to: &'static str,
    pub filter_apply: &'static str,
    pub next_page: &'static str,
    pub first_page: &'static str,
    pub csv_download: &'static str,
    pub no_payments: &'static str,
    pub fee_estimated: &'static str,
    pub expiring_title: &'static str,
    pub expiring_text: &'static str,
    pub deadline: &'static str,
    pub upcoming_title: &'static str,
    pub upcoming_empty: &'static str,
    pub without_payment: &'static str,
    pub open: &'static str,
    // Payment detail.
    pub payment_title: &'static str,
    pub validate_title: &'static str,
    pub validate_amount: &'static str,
    pub validate_help: &'static str,
    pub validate_submit: &'static str,
    pub release_title: &'static str,
    pub release_help: &'static str,
    pub release_submit: &'static str,
    pub refund_title: &'static str,
    pub refund_amount: &'static str,
    pub refund_submit: &'static str,
    pub history_title: &'static str,
    pub back: &'static str,
    pub error_title: &'static str,
}

pub static FR: Texts = Texts {
    lang: "fr",
    other_lang: "en",
    other_lang_name: "English",
    sandbox_banner: "Bac à sable : aucun vrai paiement. Les cartes de test de Stripe simulent chaque cas.",
    skip_to_content: "Aller au contenu",
    pay_title: "Votre téléconsultation",
    pay_with: "avec",
    pay_amount_label: "Montant de l'empreinte bancaire",
    pay_explain_hold: "Seule une empreinte bancaire est prise maintenant : votre carte n'est pas débitée.",
    pay_explain_capture: "Après la consultation, votre praticien facture au plus ce montant ; le reste est libéré sur votre carte.",
    pay_now: "Payer maintenant",
    pay_secure: "Paiement sécurisé par Stripe. Vos données de carte ne passent jamais par ConsultPay.",
    pay_not_needed: "Cette téléconsultation ne demande pas de paiement en ligne.",
    pay_authorized: "Empreinte bancaire enregistrée. Vous pouvez entrer en salle d'attente.",
    enter_waiting_room: "Entrer en salle d'attente",
    pay_cancelled: "Le paiement n'a pas été effectué. Vous pouvez réessayer.",
    pay_declined: "Votre carte a été refusée.",
    pay_try_another: "Essayez avec une autre carte, ou contactez votre banque.",
    pay_retry: "Essayer une autre carte",
    pay_released: "Votre praticien a annulé l'empreinte : rien n'a été débité. Contactez-le si besoin.",
    pay_expired: "L'empreinte bancaire a expiré sans être débitée. Contactez votre praticien.",
    pay_refunded: "Cette consultation a été remboursée.",
    pay_captured: "Votre praticien a validé la consultation.",
    pay_unavailable: "Le paiement en ligne est momentanément indisponible. Contactez votre praticien.",
    pay_processing: "Votre paiement est en cours de vérification. Actualisez la page dans un instant.",
    pay_hold_later: "Votre consultation est encore loin et une empreinte bancaire ne dure que quelques jours : vous enregistrez maintenant votre carte chez Stripe, et l'empreinte sera prise automatiquement le",
    pay_save_consent: "En enregistrant votre carte, vous autorisez votre praticien à y prendre cette empreinte (et à la renouveler si la consultation est validée plus tard), pour cette consultation seulement. Rien n'est débité avant la consultation.",
    pay_hold_consent: "Votre carte reste enregistrée chez Stripe pour cette consultation, afin que l'empreinte puisse être renouvelée si la consultation est validée plus tard.",
    pay_save_card: "Enregistrer ma carte",
    pay_card_saved: "Votre carte est enregistrée. L'empreinte sera prise automatiquement le",
    pay_card_saved_then: "Vous pourrez entrer en salle d'attente une fois l'empreinte prise.",
    pay_authentication_required: "Votre banque demande que vous confirmiez vous-même ce paiement. Autorisez à nouveau votre carte ci-dessous.",
    pay_expired_again: "L'empreinte précédente a expiré sans être débitée. Autorisez à nouveau votre carte pour entrer en salle d'attente.",
    pay_disputed: "Ce paiement fait l'objet d'une contestation auprès de votre banque.",
    hold_scheduled: "Carte enregistrée : l'empreinte sera prise automatiquement le",
    card_refused: "La carte enregistrée a été refusée : le patient doit autoriser à nouveau sa carte depuis son lien de paiement.",
    renewal_refused: "Le renouvellement de l'empreinte a été refusé : validez l'acte avant l'échéance, sinon l'empreinte expirera.",
    attention_title: "À vérifier dans Stripe",
    refunds_title: "Remboursements",
    refund_pending: "en cours",
    refund_failed: "échoué",
    dispute_title: "Contestation",
    dispute_reason: "Motif",
    dispute_evidence_due: "Justificatifs à fournir avant le",
    dispute_withdrawn: "Fonds retirés",
    dispute_fee: "Frais de contestation",
    dispute_open_in_stripe: "Répondre dans Stripe",
    attention_panel_title: "À traiter : cartes refusées, contestations",
    prefs_statement: "Ce que voit le patient sur ses reçus et son relevé",
    prefs_payment_label: "Libellé du paiement",
    prefs_payment_label_help: "Vide : « Téléconsultation » et la date, sans votre nom ni votre spécialité.",
    prefs_descriptor_suffix: "Suffixe du relevé bancaire",
    prefs_descriptor_suffix_help: "Ajouté au libellé de votre compte Stripe sur le relevé du patient (22 caractères latins au plus). Vide : rien n'est ajouté.",
    waiting_room_title: "Salle d'attente",
    waiting_room_text: "Vous êtes en salle d'attente. Votre praticien va vous rejoindre.",
    not_found_title: "Lien introuvable",
    not_found_text: "Ce lien de paiement n'existe pas ou n'est plus valable. Demandez-en un nouveau à votre praticien.",
    login_title: "Connexion",
    login_token: "Jeton d'accès",
    login_token_help: "Le jeton donné par votre administrateur (consultpay user add).",
    login_submit: "Se connecter",
    login_failed: "Ce jeton n'est pas reconnu.",
    logout: "Se déconnecter",
    nav_overview: "Tableau de bord",
    nav_schedule: "Planifier",
    nav_preferences: "Mes préférences",
    nav_services: "Services",
    role_practitioner: "Praticien",
    role_secretary: "Secrétariat",
    stripe_title: "Compte Stripe",
    stripe_status_unlinked: "Non lié",
    stripe_status_pending: "En cours d'inscription",
    stripe_status_linked: "Lié",
    stripe_status_revoked: "Lien désactivé",
    stripe_account: "Référence du compte",
    stripe_charges_ok: "Peut encaisser des paiements.",
    stripe_charges_blocked: "Ne peut pas encore encaisser de paiements",
    stripe_link: "Associer un compte Stripe",
    stripe_onboard: "Créer un compte Stripe",
    stripe_verify: "Vérifier l'appariement",
    stripe_unlink: "Désactiver le lien",
    stripe_relink: "Réactiver le lien",
    stripe_unlink_title: "Désactiver le lien avec Stripe ?",
    stripe_unlink_explain: "La désactivation ne supprime pas votre compte Stripe : elle supprime seulement l'association entre votre compte et ConsultPay. L'historique des paiements est conservé.",
    stripe_unlink_confirm: "Oui, désactiver le lien",
    stripe_unlink_force: "Désactiver quand même (des empreintes sont en cours)",
    stripe_unlink_account_links: "Ce compte Stripe a été créé pour vous par la plateforme : il reste le vôtre et reste connecté à la plateforme chez Stripe. ConsultPay cessera seulement de l'utiliser ; pour le déconnecter entièrement, faites-le depuis votre tableau de bord Stripe (Paramètres, plateformes connectées).",
    cancel: "Annuler",
    stripe_payouts: "Virements",
    stripe_payouts_first: "Stripe retient le premier paiement 7 à 10 jours, puis vire selon ce calendrier.",
    stripe_dashboard: "Gérer les virements sur Stripe",
    stripe_fees_note: "Des frais sont appliqués par Stripe sur chaque paiement.",
    flash_linked: "Votre compte Stripe est lié.",
    flash_denied: "Le lien avec Stripe a été refusé.",
    oauth_returning: "Retour de Stripe…",
    flash_onboarding_back: "De retour de Stripe : le statut du compte se met à jour d'ici quelques instants (« Vérifier l'appariement » le relit tout de suite).",
    flash_onboarding_expired: "Le lien d'inscription Stripe a expiré : reprenez l'inscription depuis le panneau Stripe.",
    oauth_sign_in_first: "Connectez-vous au tableau de bord dans ce navigateur, puis liez Stripe à nouveau.",
    flash_verified: "Appariement vérifié.",
    flash_unlinked: "Le lien avec Stripe est désactivé.",
    flash_saved: "Enregistré.",
    flash_validated: "Acte validé : le montant a été débité.",
    flash_released: "Empreinte annulée : rien n'a été débité.",
    flash_refunded: "Remboursement effectué.",
    flash_csrf: "Le formulaire a expiré. Recommencez.",
    prefs_title: "Préférences de facturation",
    prefs_default_amount: "Montant par défaut d'une téléconsultation",
    prefs_max_amount: "Montant maximum",
    prefs_max_help: "Le montant reste modulable à chaque acte, dans la limite de ce maximum.",
    prefs_currency: "Devise",
    prefs_fee_schedule: "Frais Stripe",
    prefs_custom: "Personnalisés",
    prefs_percent: "Pourcentage",
    prefs_fixed: "Part fixe",
    prefs_preview: "Aperçu",
    fee: "frais",
    net: "net",
    save: "Enregistrer",
    preset_default: "1,4 % + 0,25 € (par défaut)",
    preset_standard: "Cartes EEE standard : 1,5 % + 0,25 €",
    preset_premium: "Cartes EEE premium : 1,9 % + 0,25 €",
    preset_uk: "Cartes britanniques : 2,5 % + 0,25 €",
    preset_international: "Cartes internationales : 3,25 % + 0,25 €",
    services_title: "Services",
    services_empty: "Aucun service pour l'instant.",
    service_name: "Nom",
    service_amount: "Montant",
    service_active: "Actif",
    service_add: "Ajouter le service",
    service_update: "Modifier",
    service_deactivate: "Désactiver",
    service_reactivate: "Réactiver",
    service_inactive: "inactif",
    schedule_title: "Planifier une téléconsultation",
    schedule_practitioner: "Praticien",
    schedule_patient: "Patient (nom affiché)",
    schedule_email: "E-mail du patient (facultatif)",
    schedule_starts_at: "Date et heure",
    schedule_mode: "Type de téléconsultation",
    schedule_mode_none: "Téléconsultation sans paiement en ligne",
    schedule_mode_none_help: "Patient au tiers payant, téléconsultation non facturée ou facturée par un autre moyen.",
    schedule_mode_online: "Téléconsultation avec paiement en ligne",
    schedule_mode_online_help: "Le patient devra saisir ses coordonnées bancaires avant la séance.",
    schedule_service: "Service",
    schedule_no_service: "Montant par défaut",
    schedule_amount: "Montant maximum de l'empreinte (facultatif)",
    schedule_amount_help: "Vide : le prix du service, sinon le montant par défaut.",
    schedule_submit: "Planifier",
    schedule_done: "Téléconsultation planifiée.",
    schedule_link: "Lien à envoyer au patient",
    schedule_link_help: "Ce lien n'est montré qu'une fois : copiez-le maintenant.",
    copy: "Copier",
    copied: "Copié",
    schedule_another: "Planifier une autre téléconsultation",
    schedule_needs_stripe: "Le paiement en ligne demande un compte Stripe lié qui peut encaisser.",
    payments_title: "Paiements",
    col_date: "Date",
    col_patient: "Patient",
    col_held: "Empreinte",
    col_captured: "Débité",
    col_refunded: "Remboursé",
    col_fee: "Frais",
    col_net: "Net",
    col_status: "Statut",
    totals: "Totaux",
    filter_status: "Statut",
    filter_all: "Tous",
    filter_from: "Du",
    filter_to: "Au",
    filter_apply: "Filtrer",
    next_page: "Page suivante",
    first_page: "Première page",
    csv_download: "Télécharger en CSV",
    no_payments: "Aucun paiement.",
    fee_estimated: "estimation",
    expiring_title: "Empreintes bientôt expirées",
    expiring_text: "Validez ou annulez ces empreintes avant leur échéance (7 jours après l'autorisation).",
    deadline: "Échéance",
    upcoming_title: "Prochaines téléconsultations",
    upcoming_empty: "Aucune téléconsultation prévue.",
    without_payment: "sans paiement en ligne",
    open: "Ouvrir",
    payment_title: "Paiement",
    validate_title: "Valider l'acte",
    validate_amount: "Montant à facturer",
    validate_help: "Au plus le montant de l'empreinte ; le reste est libéré. 0 annule l'empreinte.",
    validate_submit: "Valider et débiter",
    release_title: "Annuler l'empreinte",
    release_help: "Rien ne sera débité au patient.",
    release_submit: "Annuler l'empreinte",
    refund_title: "Rembourser",
    refund_amount: "Montant à rembourser",
    refund_submit: "Rembourser",
    history_title: "Historique",
    back: "Retour",
    error_title: "Impossible",
};

pub static EN: Texts = Texts {
    lang: "en",
    other_lang: "fr",
    other_lang_name: "Français",
    sandbox_banner: "Sandbox: no real payments. Stripe's test cards simulate every case.",
    skip_to_content: "Skip to content",
    pay_title: "Your teleconsultation",
    pay_with: "with",
    pay_amount_label: "Amount to be held on your card",
    pay_explain_hold: "Only a hold is placed now: your card is not charged.",
    pay_explain_capture: "After the consultation your practitioner charges at most this amount; the rest is released to your card.",
    pay_now: "Pay now",
    pay_secure: "Payment secured by Stripe. Your card details never pass through ConsultPay.",
    pay_not_needed: "This teleconsultation needs no online payment.",
    pay_authorized: "Your card is authorised. You may enter the waiting room.",
    enter_waiting_room: "Enter waiting room",
    pay_cancelled: "The payment was not made. You can try again.",
    pay_declined: "Your card was declined.",
    pay_try_another: "Try another card, or contact your bank.",
    pay_retry: "Try another card",
    pay_released: "Your practitioner cancelled the hold: nothing was charged. Contact them if needed.",
    pay_expired: "The hold on your card expired without being charged. Contact your practitioner.",
    pay_refunded: "This consultation was refunded.",
    pay_captured: "Your practitioner has validated the consultation.",
    pay_unavailable: "Online payment is unavailable for now. Contact your practitioner.",
    pay_processing: "Your payment is being checked. Refresh the page in a moment.",
    pay_hold_later: "Your consultation is still some way off and a card hold lasts only a few days: you save your card with Stripe now, and the hold will be placed automatically on",
    pay_save_consent: "By saving your card you allow your practitioner to place this hold on it (and to renew it should the consultation be validated later), for this consultation only. Nothing is charged before the consultation.",
    pay_hold_consent: "Your card stays saved with Stripe for this consultation, so the hold can be renewed should the consultation be validated later.",
    pay_save_card: "Save my card",
    pay_card_saved: "Your card is saved. The hold will be placed automatically on",
    pay_card_saved_then: "You can enter the waiting room once the hold is in place.",
    pay_authentication_required: "Your bank asks you to confirm this payment yourself. Authorise your card again below.",
    pay_expired_again: "The previous hold expired without being charged. Authorise your card again to enter the waiting room.",
    pay_disputed: "This payment is disputed with your bank.",
    hold_scheduled: "Card saved: the hold will be placed automatically on",
    card_refused: "The saved card was declined: the patient must authorise their card again from their pay link.",
    renewal_refused: "The hold could not be renewed: validate the act before the deadline, or the hold will expire.",
    attention_title: "To check in Stripe",
    refunds_title: "Refunds",
    refund_pending: "pending",
    refund_failed: "failed",
    dispute_title: "Dispute",
    dispute_reason: "Reason",
    dispute_evidence_due: "Evidence due by",
    dispute_withdrawn: "Funds withdrawn",
    dispute_fee: "Dispute fee",
    dispute_open_in_stripe: "Respond in Stripe",
    attention_panel_title: "To act on: declined cards, disputes",
    prefs_statement: "What the patient sees on receipts and bank statements",
    prefs_payment_label: "Payment label",
    prefs_payment_label_help: "Empty: \"Teleconsultation\" and the date, without your name or specialty.",
    prefs_descriptor_suffix: "Bank statement suffix",
    prefs_descriptor_suffix_help: "Added to your Stripe account's descriptor on the patient's statement (at most 22 Latin characters). Empty: nothing is added.",
    waiting_room_title: "Waiting room",
    waiting_room_text: "You are in the waiting room. Your practitioner will join you.",
    not_found_title: "Link not found",
    not_found_text: "This payment link does not exist or is no longer valid. Ask your practitioner for a new one.",
    login_title: "Sign in",
    login_token: "Access token",
    login_token_help: "The token your administrator gave you (consultpay user add).",
    login_submit: "Sign in",
    login_failed: "This token is not recognised.",
    logout: "Sign out",
    nav_overview: "Dashboard",
    nav_schedule: "Schedule",
    nav_preferences: "Preferences",
    nav_services: "Services",
    role_practitioner: "Practitioner",
    role_secretary: "Secretary",
    stripe_title: "Stripe account",
    stripe_status_unlinked: "Not linked",
    stripe_status_pending: "Onboarding",
    stripe_status_linked: "Linked",
    stripe_status_revoked: "Link disabled",
    stripe_account: "Account",
    stripe_charges_ok: "Can take payments.",
    stripe_charges_blocked: "Cannot take payments yet",
    stripe_link: "Link with Stripe",
    stripe_onboard: "Create a Stripe account",
    stripe_verify: "Verify pairing",
    stripe_unlink: "Unlink",
    stripe_relink: "Relink",
    stripe_unlink_title: "Unlink from Stripe?",
    stripe_unlink_explain: "Unlinking does not delete your Stripe account: it only removes the association between your account and ConsultPay. Payment history is kept.",
    stripe_unlink_confirm: "Yes, unlink",
    stripe_unlink_force: "Unlink anyway (holds are outstanding)",
    stripe_unlink_account_links: "This Stripe account was created for you by the platform: it stays yours and stays connected to the platform at Stripe. ConsultPay only stops using it; to disconnect it entirely, do so from your Stripe dashboard (Settings, connected platforms).",
    cancel: "Cancel",
    stripe_payouts: "Payouts",
    stripe_payouts_first: "Stripe holds the first payment for 7–10 days, then pays out on this schedule.",
    stripe_dashboard: "Manage payouts on Stripe",
    stripe_fees_note: "Stripe charges a fee on every payment.",
    flash_linked: "Your Stripe account is linked.",
    flash_denied: "The Stripe link was refused.",
    oauth_returning: "Returning from Stripe…",
    flash_onboarding_back: "Back from Stripe: the account's status updates within moments (\"Verify pairing\" re-reads it now).",
    flash_onboarding_expired: "The Stripe onboarding link expired: resume onboarding from the Stripe panel.",
    oauth_sign_in_first: "Sign in to the dashboard in this browser, then link Stripe again.",
    flash_verified: "Pairing verified.",
    flash_unlinked: "The Stripe link is disabled.",
    flash_saved: "Saved.",
    flash_validated: "Act validated: the amount was charged.",
    flash_released: "Hold released: nothing was charged.",
    flash_refunded: "Refund made.",
    flash_csrf: "The form expired. Please try again.",
    prefs_title: "Billing preferences",
    prefs_default_amount: "Default amount per teleconsultation",
    prefs_max_amount: "Maximum amount",
    prefs_max_help: "The amount can change with each act, up to this maximum.",
    prefs_currency: "Currency",
    prefs_fee_schedule: "Stripe fees",
    prefs_custom: "Custom",
    prefs_percent: "Percentage",
    prefs_fixed: "Fixed part",
    prefs_preview: "Preview",
    fee: "fee",
    net: "net",
    save: "Save",
    preset_default: "1.4% + €0.25 (default)",
    preset_standard: "Standard EEA cards: 1.5% + €0.25",
    preset_premium: "Premium EEA cards: 1.9% + €0.25",
    preset_uk: "UK cards: 2.5% + €0.25",
    preset_international: "International cards: 3.25% + €0.25",
    services_title: "Services",
    services_empty: "No services yet.",
    service_name: "Name",
    service_amount: "Amount",
    service_active: "Active",
    service_add: "Add service",
    service_update: "Update",
    service_deactivate: "Deactivate",
    service_reactivate: "Reactivate",
    service_inactive: "inactive",
    schedule_title: "Schedule a teleconsultation",
    schedule_practitioner: "Practitioner",
    schedule_patient: "Patient (display name)",
    schedule_email: "Patient's e-mail (optional)",
    schedule_starts_at: "Date and time",
    schedule_mode: "Kind of teleconsultation",
    schedule_mode_none: "Without online payment",
    schedule_mode_none_help: "Third-party payer, free, or billed another way.",
    schedule_mode_online: "With online payment",
    schedule_mode_online_help: "The patient enters their card before the session.",
    schedule_service: "Service",
    schedule_no_service: "Default amount",
    schedule_amount: "Maximum hold amount (optional)",
    schedule_amount_help: "Empty: the service's price, else the default amount.",
    schedule_submit: "Schedule",
    schedule_done: "Teleconsultation scheduled.",
    schedule_link: "Link to send to the patient",
    schedule_link_help: "This link is shown only once: copy it now.",
    copy: "Copy",
    copied: "Copied",
    schedule_another: "Schedule another teleconsultation",
    schedule_needs_stripe: "Online payment needs a linked Stripe account that can take payments.",
    payments_title: "Payments",
    col_date: "Date",
    col_patient: "Patient",
    col_held: "Held",
    col_captured: "Captured",
    col_refunded: "Refunded",
    col_fee: "Fee",
    col_net: "Net",
    col_status: "Status",
    totals: "Totals",
    filter_status: "Status",
    filter_all: "All",
    filter_from: "From",
    filter_to: "To",
    filter_apply: "Filter",
    next_page: "Next page",
    first_page: "First page",
    csv_download: "Download CSV",
    no_payments: "No payments.",
    fee_estimated: "estimate",
    expiring_title: "Holds expiring soon",
    expiring_text: "Validate or release these holds before their deadline (7 days after authorisation).",
    deadline: "Deadline",
    upcoming_title: "Upcoming teleconsultations",
    upcoming_empty: "No teleconsultation scheduled.",
    without_payment: "without online payment",
    open: "Open",
    payment_title: "Payment",
    validate_title: "Validate the act",
    validate_amount: "Amount to charge",
    validate_help: "At most the hold; the rest is released. 0 releases the hold.",
    validate_submit: "Validate and charge",
    release_title: "Release the hold",
    release_help: "Nothing will be charged to the patient.",
    release_submit: "Release the hold",
    refund_title: "Refund",
    refund_amount: "Amount to refund",
    refund_submit: "Refund",
    history_title: "History",
    back: "Back",
    error_title: "Not possible",
};

pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_first_known_language() {
        assert_eq!(parse("en-GB"), Some(Lang::En));
        assert_eq!(parse("fr-FR;q=0.9"), Some(Lang::Fr));
        assert_eq!(parse("de"), None);
    }

    #[test]
    fn accept_language_weights_are_honoured() {
        assert_eq!(preferred("en;q=0.1, fr"), Some(Lang::Fr));
        assert_eq!(preferred("de-DE, en-GB;q=0.8, fr;q=0.7"), Some(Lang::En));
        assert_eq!(preferred("fr, en"), Some(Lang::Fr));
        assert_eq!(preferred("en;q=1.0, fr;q=1"), Some(Lang::En));
        assert_eq!(preferred("fr;q=0, en;q=0.5"), Some(Lang::En));
        assert_eq!(preferred("fr;q=0"), None);
        assert_eq!(preferred("fr;q=2, en;q=0.3"), Some(Lang::En));
        assert_eq!(preferred("fr;q=0.x, de"), None);
        assert_eq!(preferred(""), None);
    }

    #[test]
    fn every_recorded_history_event_has_words_in_both_languages() {
        use billing_core::payment::model::EventKind;
        let requested = ["capture", "release", "refund"].map(|op| format!("{op}_requested"));
        let codes = EventKind::ALL
            .iter()
            .map(|k| k.as_str().to_owned())
            .chain(requested)
            .chain(["checkout_started".to_owned()]);
        for code in codes {
            for lang in [Lang::Fr, Lang::En] {
                assert_ne!(history_event(&code, lang), code, "{code} in {lang:?}");
            }
        }
    }

    #[test]
    fn the_seeds_labels_are_the_french_texts() {
        assert_eq!(FR.enter_waiting_room, "Entrer en salle d'attente");
        assert_eq!(EN.enter_waiting_room, "Enter waiting room");
    }
}
