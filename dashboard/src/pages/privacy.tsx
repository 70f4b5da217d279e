// The published privacy policy. The contact section appears only when this deployment has a
// configured (and so verified) support address: never a fake or unreachable one.
import { useEffect } from 'preact/hooks';
import { about, loadAbout } from '../lib/store';
import { Loading, PageHead } from '../ui';

export default function Privacy() {
  useEffect(() => {
    void loadAbout();
  }, []);
  const a = about.value;
  return (
    <article class="prose">
      <PageHead title="Privacy Policy" sub="Effective date: June 15, 2026" />
      <p>
        LLMtrack helps users track LLM usage, cost, latency, model activity, feature usage, and related analytics. This Privacy Policy explains what data we collect, how we use it, how we protect it,
        and what happens when a user deletes their data. By using LLMtrack, you agree to this Privacy Policy.
      </p>
      <h2>1. Data we collect</h2>
      <p>We collect the data needed to provide the LLMtrack service. This may include:</p>
      <ul>
        <li>Account information, such as email address and authentication identifiers.</li>
        <li>Workspace information, such as workspace name, plan, settings, and usage limits.</li>
        <li>API key metadata, such as key name, key prefix, creation date, active/deactivated state, and source labels.</li>
        <li>LLM usage events sent to LLMtrack, such as provider, model, feature name, token counts, cost, latency, request status, timestamp, and metadata included by the user.</li>
        <li>Billing and subscription information processed through our payment provider.</li>
        <li>Technical information needed to operate the service, such as logs, request metadata, device/browser information, and security events.</li>
      </ul>
      <p>
        LLMtrack does not require users to send prompt text, completion text, personal customer data, or sensitive information. Users should avoid sending sensitive or unnecessary personal data
        inside metadata fields.
      </p>
      <h2>2. How we use data</h2>
      <p>We use collected data to:</p>
      <ul>
        <li>Provide usage analytics, dashboards, reports, alerts, forecasts, and related product features.</li>
        <li>Authenticate users and protect accounts.</li>
        <li>Process subscriptions and enforce plan limits.</li>
        <li>Improve service reliability, performance, and security.</li>
        <li>Detect abuse, errors, fraud, and unauthorized access.</li>
        <li>Communicate important account, billing, security, or service updates.</li>
        <li>Provide support when requested.</li>
      </ul>
      <p>We do not sell user data. We do not use customer usage data to train third-party AI models.</p>
      <h2>3. API keys and security-sensitive data</h2>
      <p>Raw LLMtrack API keys are shown only when they are created. After that, we store only protected key verification data, such as hashed key values and key prefixes.</p>
      <p>
        Users are responsible for storing their API keys securely and should not expose them in public repositories, client-side code, screenshots, or public support channels. If a key is
        compromised, users should delete or deactivate it and create a new key.
      </p>
      <h2>4. User-provided metadata</h2>
      <p>
        Users control what they send to LLMtrack through the ingest endpoint. Metadata fields may be useful for tracking product features, environments, customers, teams, or business context.
        However, users should not send sensitive personal information, regulated data, secrets, passwords, private keys, or payment card data inside metadata. LLMtrack is designed for usage
        analytics, not for storing confidential application payloads.
      </p>
      <h2>5. Data retention</h2>
      <p>
        Retention depends on the user’s plan and product settings. Free users may have a shorter visible history window. Paid plans may include longer request-level history or report history. When
        data reaches the applicable retention limit, LLMtrack may delete, archive, aggregate, or stop displaying that data according to the plan and product behavior. Monthly or scheduled reports
        may remain available separately from raw request-level history, depending on plan and implementation.
      </p>
      <h2>6. Data deletion</h2>
      <p>
        Users may delete data through available account, workspace, or product controls. When user data is deleted, we delete it from active production systems where the data is stored for the
        LLMtrack service. This is intended to reduce the risk of unauthorized use and to respect user privacy.
      </p>
      <p>
        Some deletion processes may require a short operational period to complete. Backups, security logs, or infrastructure records may persist for a limited time according to normal backup,
        security, and legal retention practices, but they are not used as active product data.
      </p>
      <h2>7. Billing data</h2>
      <p>
        Payments may be processed by third-party payment providers. LLMtrack does not store full payment card numbers. Billing providers may collect and process payment information according to
        their own privacy and security practices.
      </p>
      <h2>8. Service providers</h2>
      <p>
        We may use trusted service providers for hosting, database storage, authentication, payment processing, email delivery, analytics, monitoring, and security. These providers are used only as
        needed to operate and improve LLMtrack.
      </p>
      <h2>9. Security</h2>
      <p>
        We use reasonable technical and organizational measures to protect user data, including access controls, hashed API keys, encrypted transport, and restricted access to production systems.
        No internet service can guarantee perfect security. Users are responsible for protecting their own credentials, API keys, and account access.
      </p>
      <h2>10. International use</h2>
      <p>LLMtrack may be accessed from different countries. By using the service, users understand that data may be processed where LLMtrack or its service providers operate.</p>
      <h2>11. Changes to this Privacy Policy</h2>
      <p>
        We may update this Privacy Policy from time to time. If changes are material, we may provide notice through the website, dashboard, or email. Continued use of LLMtrack after changes means
        acceptance of the updated policy.
      </p>
      {a === undefined ? (
        <Loading label="Loading contact details…" />
      ) : a && a.support_email ? (
        <section id="contact">
          <h2>12. Contact</h2>
          <p>
            For privacy questions, contact LLMtrack support at: <a href={`mailto:${a.support_email}`} data-external>{a.support_email}</a>
          </p>
        </section>
      ) : null}
    </article>
  );
}
