export { confirmDelivery, type DeliveryConfirmOutcome, deliveryIdOfRef, markUnsubscribed } from './campaigns.confirm.ts';
export { type DeliveryDispatchResult, dispatchDeliveries, readShortDeliveryToken, shortDeliveryToken } from './campaigns.dispatch.ts';
export { campaignRoutes } from './campaigns.routes.ts';
export {
  type Campaign,
  checkTemplateChange,
  createCampaign,
  getCampaign,
  launchCampaign,
  listCampaigns,
  runCampaignSteps,
  setCampaignStatus,
} from './campaigns.service.ts';
export { campaignStats, nonResponders, purgeCampaign } from './campaigns.stats.ts';
