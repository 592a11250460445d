import { Type } from 'typebox';
import { Key, Localized } from '../../platform/http.ts';
import { channelKinds } from './channels.service.ts';

export const ChannelKindSchema = Type.Union(channelKinds.map((k) => Type.Literal(k)));

export const ChannelSchema = Type.Object({
  key: Type.String(),
  kind: Type.String(),
  names: Localized,
  builtin: Type.Boolean(),
});

export const CreateChannelBody = Type.Object({ key: Key, kind: ChannelKindSchema, names: Localized }, { additionalProperties: false });

export const UpdateChannelBody = Type.Object(
  { kind: Type.Optional(ChannelKindSchema), names: Type.Optional(Localized) },
  { additionalProperties: false },
);
