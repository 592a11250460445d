export { channelRoutes } from './channels.routes.ts';
export {
  type Channel,
  type ChannelKind,
  ensureBuiltinChannels,
  getChannel,
  listChannels,
  peekChannels,
  requireChannel,
} from './channels.service.ts';
