// Built-in templates, French and English. Transactional ones carry no advertising (RULES 23).
import type { TemplateInput } from './templates.service.ts';

export const builtinTemplates: TemplateInput[] = [
  {
    key: 'double-opt-in',
    channel: 'email',
    category: 'transactional',
    variants: {
      fr: {
        subject: 'Confirmez votre inscription — {{ company.name }}',
        html: '<p>Bonjour{% if contact.firstName %} {{ contact.firstName }}{% endif %},</p><p>Vous avez demandé à recevoir « {{ purpose.title }} ». Confirmez-le en cliquant sur le bouton ci-dessous. Sans confirmation, nous ne vous écrirons pas.</p><p><a class="button" href="{{ links.confirm }}">Je confirme</a></p><p>Si vous n’êtes pas à l’origine de cette demande, ignorez ce message.</p>',
        text: 'Bonjour{% if contact.firstName %} {{ contact.firstName }}{% endif %},\n\nVous avez demandé à recevoir « {{ purpose.title }} ». Confirmez-le ici : {{ links.confirm }}\n\nSans confirmation, nous ne vous écrirons pas. Si vous n’êtes pas à l’origine de cette demande, ignorez ce message.',
      },
      en: {
        subject: 'Please confirm your subscription — {{ company.name }}',
        html: '<p>Hello{% if contact.firstName %} {{ contact.firstName }}{% endif %},</p><p>You asked to receive “{{ purpose.title }}”. Please confirm with the button below. Without your confirmation we will not write to you.</p><p><a class="button" href="{{ links.confirm }}">I confirm</a></p><p>If you did not ask for this, ignore this message.</p>',
        text: 'Hello{% if contact.firstName %} {{ contact.firstName }}{% endif %},\n\nYou asked to receive “{{ purpose.title }}”. Please confirm here: {{ links.confirm }}\n\nWithout your confirmation we will not write to you. If you did not ask for this, ignore this message.',
      },
    },
  },
  {
    key: 'preference-link',
    channel: 'email',
    category: 'transactional',
    variants: {
      fr: {
        subject: 'Vos préférences de contact — {{ company.name }}',
        html: '<p>Bonjour,</p><p>Voici le lien pour consulter et modifier vos préférences de contact :</p><p><a class="button" href="{{ links.preferences }}">Mes préférences</a></p><p>Si vous n’avez rien demandé, ignorez ce message.</p>',
        text: 'Bonjour,\n\nVoici le lien pour consulter et modifier vos préférences de contact : {{ links.preferences }}\n\nSi vous n’avez rien demandé, ignorez ce message.',
      },
      en: {
        subject: 'Your contact preferences — {{ company.name }}',
        html: '<p>Hello,</p><p>Here is the link to see and change your contact preferences:</p><p><a class="button" href="{{ links.preferences }}">My preferences</a></p><p>If you did not ask for this, ignore this message.</p>',
        text: 'Hello,\n\nHere is the link to see and change your contact preferences: {{ links.preferences }}\n\nIf you did not ask for this, ignore this message.',
      },
    },
  },
  {
    key: 'withdrawal-receipt',
    channel: 'email',
    category: 'transactional',
    variants: {
      fr: {
        subject: 'Votre désinscription est enregistrée — {{ company.name }}',
        html: '<p>Bonjour,</p><p>Nous avons bien enregistré votre retrait de « {{ purpose.title }} ». Vous ne recevrez plus ces messages.</p><p>Vous pouvez revoir vos choix à tout moment : <a href="{{ links.preferences }}">mes préférences</a>.</p>',
        text: 'Bonjour,\n\nNous avons bien enregistré votre retrait de « {{ purpose.title }} ». Vous ne recevrez plus ces messages.\n\nVos préférences : {{ links.preferences }}',
      },
      en: {
        subject: 'Your unsubscription is recorded — {{ company.name }}',
        html: '<p>Hello,</p><p>We have recorded that you withdrew from “{{ purpose.title }}”. You will not receive these messages any more.</p><p>You can review your choices at any time: <a href="{{ links.preferences }}">my preferences</a>.</p>',
        text: 'Hello,\n\nWe have recorded that you withdrew from “{{ purpose.title }}”. You will not receive these messages any more.\n\nYour preferences: {{ links.preferences }}',
      },
    },
  },
  // Re-permission (RULES 17): a marketing message, so it carries the opt-out; the confirm link asks once.
  {
    key: 'repermission-first',
    channel: 'email',
    category: 'marketing',
    variants: {
      fr: {
        subject: 'Souhaitez-vous continuer à recevoir nos informations ? — {{ company.name }}',
        html: '<p>Bonjour{% if contact.firstName %} {{ contact.firstName }}{% endif %},</p><p>Nous tenons à ne vous écrire que si vous le souhaitez. Pour continuer à recevoir nos informations, confirmez-le avant le {{ campaign.deadline | date: "%d/%m/%Y" }} :</p><p><a class="button" href="{{ links.confirm }}">Je confirme</a></p><p>Sans réponse de votre part, nous cesserons de vous écrire et supprimerons vos coordonnées. Vous pouvez aussi <a href="{{ links.unsubscribe }}">vous désinscrire</a> dès maintenant.</p>',
        text: 'Bonjour{% if contact.firstName %} {{ contact.firstName }}{% endif %},\n\nNous tenons à ne vous écrire que si vous le souhaitez. Pour continuer à recevoir nos informations, confirmez-le avant le {{ campaign.deadline | date: "%d/%m/%Y" }} : {{ links.confirm }}\n\nSans réponse de votre part, nous cesserons de vous écrire et supprimerons vos coordonnées. Pour vous désinscrire dès maintenant : {{ links.unsubscribe }}',
      },
      en: {
        subject: 'Would you like to keep hearing from us? — {{ company.name }}',
        html: '<p>Hello{% if contact.firstName %} {{ contact.firstName }}{% endif %},</p><p>We only want to write to you if you wish. To keep receiving our news, please confirm before {{ campaign.deadline | date: "%d/%m/%Y" }}:</p><p><a class="button" href="{{ links.confirm }}">I confirm</a></p><p>Without an answer we will stop writing to you and delete your details. You can also <a href="{{ links.unsubscribe }}">unsubscribe</a> now.</p>',
        text: 'Hello{% if contact.firstName %} {{ contact.firstName }}{% endif %},\n\nWe only want to write to you if you wish. To keep receiving our news, please confirm before {{ campaign.deadline | date: "%d/%m/%Y" }}: {{ links.confirm }}\n\nWithout an answer we will stop writing to you and delete your details. To unsubscribe now: {{ links.unsubscribe }}',
      },
    },
  },
  {
    key: 'repermission-reminder',
    channel: 'email',
    category: 'marketing',
    variants: {
      fr: {
        subject: 'Rappel : confirmez-vous vouloir recevoir nos informations ? — {{ company.name }}',
        html: '<p>Bonjour{% if contact.firstName %} {{ contact.firstName }}{% endif %},</p><p>Nous n’avons pas encore reçu votre réponse. Pour continuer à recevoir nos informations, confirmez-le avant le {{ campaign.deadline | date: "%d/%m/%Y" }} :</p><p><a class="button" href="{{ links.confirm }}">Je confirme</a></p><p>Sans réponse, nous cesserons de vous écrire. Vous pouvez aussi <a href="{{ links.unsubscribe }}">vous désinscrire</a>.</p>',
        text: 'Bonjour{% if contact.firstName %} {{ contact.firstName }}{% endif %},\n\nNous n’avons pas encore reçu votre réponse. Pour continuer à recevoir nos informations, confirmez-le avant le {{ campaign.deadline | date: "%d/%m/%Y" }} : {{ links.confirm }}\n\nSans réponse, nous cesserons de vous écrire. Pour vous désinscrire : {{ links.unsubscribe }}',
      },
      en: {
        subject: 'Reminder: would you like to keep hearing from us? — {{ company.name }}',
        html: '<p>Hello{% if contact.firstName %} {{ contact.firstName }}{% endif %},</p><p>We have not heard from you yet. To keep receiving our news, please confirm before {{ campaign.deadline | date: "%d/%m/%Y" }}:</p><p><a class="button" href="{{ links.confirm }}">I confirm</a></p><p>Without an answer we will stop writing to you. You can also <a href="{{ links.unsubscribe }}">unsubscribe</a>.</p>',
        text: 'Hello{% if contact.firstName %} {{ contact.firstName }}{% endif %},\n\nWe have not heard from you yet. To keep receiving our news, please confirm before {{ campaign.deadline | date: "%d/%m/%Y" }}: {{ links.confirm }}\n\nWithout an answer we will stop writing to you. To unsubscribe: {{ links.unsubscribe }}',
      },
    },
  },
  {
    key: 'repermission-sms',
    channel: 'sms',
    category: 'marketing',
    variants: {
      fr: {
        body: '{{ company.name }} : souhaitez-vous continuer à recevoir nos offres par SMS ? Répondez OUI ou confirmez ici : {{ links.confirm }} STOP au {{ sms.stopNumber }}',
      },
      en: {
        body: '{{ company.name }}: would you like to keep receiving our offers by text? Reply YES or confirm here: {{ links.confirm }} STOP to {{ sms.stopNumber }}',
      },
    },
  },
];

/** The responsive layout every email is wrapped in; marketing mail gets the opt-out links. */
export const emailLayout = `<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{ subject }}</title>
<style>
body{margin:0;padding:0;background:#f4f4f5;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#18181b}
.wrap{max-width:600px;margin:0 auto;padding:24px 16px}
.card{background:#fff;border-radius:8px;padding:24px;line-height:1.5}
.button{display:inline-block;background:#1d4ed8;color:#fff !important;text-decoration:none;padding:12px 20px;border-radius:6px;font-weight:600}
.footer{font-size:12px;color:#52525b;padding:16px 8px;line-height:1.5}
.footer a{color:#52525b}
</style></head>
<body><div class="wrap">
<div class="card">{{ content }}</div>
<div class="footer">{{ company.name }}{% if company.address != blank %} — {{ company.address }}{% endif %}{% if marketing %}<br>
{% if lang == "en" %}You receive this message because you agreed to it.{% else %}Vous recevez ce message car vous l’avez accepté.{% endif %}
<a href="{{ links.unsubscribe }}">{% if lang == "en" %}Unsubscribe{% else %}Se désinscrire{% endif %}</a> ·
<a href="{{ links.preferences }}">{% if lang == "en" %}My preferences{% else %}Mes préférences{% endif %}</a>{% endif %}</div>
</div></body></html>`;

export const textFooter = `

--
{{ company.name }}{% if company.address != blank %}, {{ company.address }}{% endif %}{% if marketing %}
{% if lang == "en" %}Unsubscribe{% else %}Se désinscrire{% endif %} : {{ links.unsubscribe }}
{% if lang == "en" %}My preferences{% else %}Mes préférences{% endif %} : {{ links.preferences }}{% endif %}`;
