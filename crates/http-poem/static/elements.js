// The Payment Element (Stripe mode with STRIPE_CHECKOUT=elements): card details go
// straight from the patient's browser to Stripe; ConsultPay only sees the result.
(function () {
  "use strict";
  var root = document.getElementById("payment-element");
  if (!root || typeof Stripe === "undefined") return;
  var stripe = Stripe(root.dataset.publishableKey, { stripeAccount: root.dataset.account });
  var elements = stripe.elements({ clientSecret: root.dataset.clientSecret, locale: root.dataset.locale });
  elements.create("payment").mount(root);
  var form = document.getElementById("elements-form");
  var error = document.getElementById("elements-error");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    // A SetupIntent saves the card for a hold placed later; a PaymentIntent holds now.
    var confirm = root.dataset.mode === "setup" ? stripe.confirmSetup : stripe.confirmPayment;
    confirm.call(stripe, { elements: elements, confirmParams: { return_url: root.dataset.returnUrl } })
      .then(function (result) { if (result.error) { error.textContent = result.error.message; error.hidden = false; } });
  });
})();
