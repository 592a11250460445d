// The access export as the person reads it: labels in their language, dates in plain words, the
// wording of each choice as it was shown to them.
import type { Lang, Words } from '../../pages/i18n.ts';
import { words } from '../../pages/i18n.ts';
import type { Channel } from '../channels/index.ts';
import type { AccessExport } from './exports.service.ts';

/** "2026-11-22 10:00 UTC": unambiguous, and the same in both languages. */
const when = (at: string | null | undefined): string => (at ? `${at.slice(0, 10)} ${at.slice(11, 16)} UTC` : '');

const label = (t: Words, prefix: string, value: string): string => (t as unknown as Record<string, string>)[`${prefix}${value}`] ?? value;

export function accessPageVars(data: AccessExport, lang: Lang, channels: Channel[]): Record<string, unknown> {
  const t = words[lang];
  const channelName = (key: string | null) => {
    const channel = channels.find((c) => c.key === key);
    return channel ? (channel.names[lang] ?? channel.names.fr ?? channel.key) : (key ?? '');
  };
  const purposes = new Map(data.purposes.map((p) => [p.key, p]));
  const purposeTitle = (key: string | null) => {
    const purpose = key ? purposes.get(key) : undefined;
    return (purpose ? (purpose.title[lang] ?? purpose.title.fr ?? purpose.title.en) : undefined) ?? key ?? '';
  };
  const c = data.contact;
  const profile = [
    ['field_id', c.id],
    ['field_email', c.email],
    ['field_phone', c.phone],
    ['field_firstName', c.firstName],
    ['field_lastName', c.lastName],
    ['field_locale', c.locale],
    ['field_kind', label(t, 'kind_', c.kind)],
    ['field_lifecycle', label(t, 'lifecycle_', c.lifecycle)],
    ['field_lastPurchaseAt', when(c.lastPurchaseAt)],
    ['field_source', c.source],
    ['field_createdAt', when(c.createdAt)],
    ['field_lastInteractionAt', when(c.lastInteractionAt)],
  ]
    .filter(([, value]) => value !== null && value !== '')
    .map(([key, value]) => ({ label: label(t, '', key as string), value }));

  return {
    generatedAt: when(data.generatedAt),
    controller: data.controller,
    profile,
    attributes: data.attributes.map((a) => ({
      key: a.key,
      value: typeof a.value === 'string' ? a.value : JSON.stringify(a.value),
      purpose: a.purpose ? purposeTitle(a.purpose) : null,
      retentionDays: a.retentionDays,
    })),
    consents: data.consents.map((s) => ({
      purpose: s.purpose,
      channel: s.channel,
      title: purposeTitle(s.purpose),
      channelName: channelName(s.channel),
      statusLabel: label(t, 'status_', s.status),
      since: when(s.since),
    })),
    events: data.events.map((e) => ({
      id: e.id,
      at: when(e.occurredAt),
      actionLabel: label(t, 'action_', e.action),
      title: e.wording.title || e.purpose,
      version: e.purposeVersion,
      channelName: channelName(e.channel),
      sourceLabel: label(t, 'source_', e.source.type),
      // What the person saw: the text recorded with the event, else the version's wording.
      wording: e.wording.textShown ?? [e.wording.title, e.wording.description].filter(Boolean).join(' — '),
      wordingLang: e.wording.language,
    })),
    deliveries: data.deliveries.map((d) => ({
      campaign: d.campaignName ?? d.campaign,
      channelName: channelName(d.channel),
      step: d.step,
      sentAt: when(d.sentAt),
      clickedAt: when(d.clickedAt),
      confirmedAt: when(d.confirmedAt),
      unsubscribedAt: when(d.unsubscribedAt),
      bouncedAt: when(d.bouncedAt),
    })),
    messages: data.messages.map((m) => ({
      kindLabel: label(t, 'message_', m.kind),
      channelName: channelName(m.channel),
      at: when(m.sentAt ?? m.createdAt),
      sent: m.sentAt !== null,
    })),
    suppressions: data.suppressions.map((s) => ({ channelName: channelName(s.channel), suppressed: s.suppressed })),
  };
}
